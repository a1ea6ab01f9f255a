"""Reading audio files into checked, mono, resampled waveforms, and fitting them to a length.

Policies (documented once, used everywhere):

* **Decoding** uses ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...). torchaudio's own
  loader would need FFmpeg through torchcodec, which audiosiam does not depend on.
* **Mono**: channels are averaged. Averaging keeps a centred source at its level and never clips.
* **Resampling**: ``torchaudio.functional.resample`` (windowed sinc) to the requested rate.
* **Checks**: a missing, unreadable, truncated, empty, silent or non-finite file, one at an absurd level
  (a peak above :data:`MAX_PEAK`, 60 dB over full scale: a float file written in the wrong units, whose
  spectrum would overflow float32), or one with an absurd sample rate, raises an
  :class:`~audiosiam.errors.AudioLoadError` subclass naming the path, the problem and what to do.
  Waveforms given to the API pass the same checks in ``check_waveform()`` (one helper, one policy),
  raising :class:`~audiosiam.errors.ParameterError`. Silence is judged after the mono mix, so a stereo
  file whose channels cancel is refused too. A garbage embedding is never produced silently.
* **Length**: ``fix_length()`` pads short clips with zeros and crops long ones (random crop for
  training, centre crop for evaluation); ``sliding_windows()`` cuts long clips into overlapping windows
  for embedding, whose embeddings are then pooled.

The package is a file per idea: ``decode`` (a whole file), ``stream`` (long recordings in blocks),
``resampling``, ``checks`` (what a waveform must be), ``integrity`` (is the file whole?), ``framing``
(lengths, windows, where a clip sounds), ``discovery`` (folders of clips, many files at once) and
``embeddings`` (embedding files). Everything public is importable from ``audiosiam.io``.
"""

from __future__ import annotations

from .._deprecated import withdrawn_exports
from .checks import MAX_PEAK
from .decode import audio_duration, load_audio
from .discovery import AUDIO_EXTENSIONS, find_audio_files, load_many
from .embeddings import read_embeddings, write_embeddings
from .stream import read_blocks

__all__ = [
    "load_audio",
    "load_many",
    "find_audio_files",
    "read_blocks",
    "audio_duration",
    "write_embeddings",
    "read_embeddings",
    "AUDIO_EXTENSIONS",
    "MAX_PEAK",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "MIN_SAMPLE_RATE": "audiosiam.io.checks",
        "MAX_SAMPLE_RATE": "audiosiam.io.checks",
        "check_waveform": "audiosiam.io.checks",
        "fix_length": "audiosiam.io.framing",
        "sliding_windows": "audiosiam.io.framing",
        "active_span": "audiosiam.io.framing",
        "resample": "audiosiam.io.resampling",
    },
)
