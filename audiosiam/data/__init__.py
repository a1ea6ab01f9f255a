"""Datasets, samplers and caching for training and evaluation (see each module's docstring)."""

from .._deprecated import withdrawn_exports
from .cache import WaveformCache
from .datasets import (
    AudioClipDataset,
    AudioFolderDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_folder)
    ManifestDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_manifest)
)
from .items import ClipItem
from .loader import make_loader
from .samplers import EpisodicSampler, PairSampler, PKSampler
from .sources import DataSource, load_sources
from .teacher_cache import TeacherCache

__all__ = [
    "AudioClipDataset",
    "ClipItem",
    "DataSource",
    "load_sources",
    "PKSampler",
    "PairSampler",
    "EpisodicSampler",
    "make_loader",
    "WaveformCache",
    "TeacherCache",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "combine_datasets": "audiosiam.data.datasets",
    },
)
