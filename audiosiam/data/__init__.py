"""Datasets, samplers and caching for training and evaluation (see each module's docstring)."""

from .cache import WaveformCache
from .datasets import (
    AudioClipDataset,
    AudioFolderDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_folder)
    ClipItem,
    ManifestDataset,  # noqa: F401  (deprecated: AudioClipDataset.from_manifest)
    combine_datasets,
    folder_items,
    manifest_columns,
    manifest_items,
)
from .loader import collate_waveforms, make_loader
from .samplers import EpisodicSampler, PairSampler, PKSampler
from .sources import DataSource, load_background, load_sources, source_items, validation_items

__all__ = [
    "AudioClipDataset",
    "ClipItem",
    "DataSource",
    "EpisodicSampler",
    "PKSampler",
    "PairSampler",
    "WaveformCache",
    "collate_waveforms",
    "combine_datasets",
    "folder_items",
    "load_background",
    "load_sources",
    "make_loader",
    "manifest_columns",
    "manifest_items",
    "source_items",
    "validation_items",
]
