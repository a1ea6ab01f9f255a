"""Datasets, samplers and caching for training and evaluation (see each module's docstring)."""

from .cache import WaveformCache
from .datasets import (
    AudioClipDataset,
    AudioFolderDataset,
    ClipItem,
    ManifestDataset,
    combine_datasets,
    folder_items,
    manifest_columns,
    manifest_items,
)
from .loader import collate_waveforms, make_loader
from .samplers import EpisodicSampler, PairSampler, PKSampler

__all__ = [
    "AudioClipDataset",
    "AudioFolderDataset",
    "ClipItem",
    "EpisodicSampler",
    "ManifestDataset",
    "PKSampler",
    "PairSampler",
    "WaveformCache",
    "collate_waveforms",
    "combine_datasets",
    "folder_items",
    "make_loader",
    "manifest_columns",
    "manifest_items",
]
