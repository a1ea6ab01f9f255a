"""Datasets, samplers and caching for training and evaluation (see each module's docstring)."""

from .datasets import (
    AudioClipDataset,
    AudioFolderDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_folder)
    ClipItem,
    ManifestDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_manifest)
    combine_datasets,
)
from .loader import make_loader
from .samplers import EpisodicSampler, PairSampler, PKSampler
from .sources import DataSource, load_sources

__all__ = [
    "AudioClipDataset",
    "ClipItem",
    "DataSource",
    "EpisodicSampler",
    "PKSampler",
    "PairSampler",
    "combine_datasets",
    "load_sources",
    "make_loader",
]
