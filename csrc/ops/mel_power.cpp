// Schema of mel_power: the power spectrum of each frame, folded into mel bands.
//
//   mel_power(spectrum (rows, bins, 2), filterbank (bins, n_mels)) -> (rows, n_mels)
//   out[r, m] = sum_f filterbank[f, m] * (spectrum[r, f, 0]^2 + spectrum[r, f, 1]^2)
//
// `spectrum` is torch.view_as_real of complex STFT frames. This is the step between the STFT and the
// logarithm of every log-mel spectrogram; as separate ATen ops it is three passes over the spectrum
// (two squares and a sum, on strided halves of complex numbers) and a dense product that mostly
// multiplies zeros, since a mel filter covers a few bins. The CPU kernel does it in one pass and skips
// the zeros. CPU only: on GPUs the Python wrapper runs the same math as ATen ops, which are fast there.
// The gradient (registered in Python) is grad_spectrum = 2 spectrum * (grad @ filterbank^T).

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("mel_power(Tensor spectrum, Tensor filterbank) -> Tensor");
}
