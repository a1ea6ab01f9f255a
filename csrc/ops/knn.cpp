// Schema of the exact k-nearest-neighbour search. Kernels: csrc/ops/{cpu,cuda}/knn_kernel.*.
//
// Queries and references are processed block by block, so the full (queries x references) matrix never
// exists. The distances returned are the exact ones of pairwise_distance (the CPU kernel screens euclidean
// candidates with a matrix product first, provably without losing a neighbour); ties go to the lower
// reference index so results are deterministic.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("knn(Tensor query, Tensor reference, int k, str metric) -> (Tensor, Tensor)");
}
