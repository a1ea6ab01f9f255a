"""Labelled clip datasets from class folders, CSV manifests, or several sources at once.

Every dataset is an :class:`AudioClipDataset`: a list of items (path, class name, group) plus how to
turn a file into a training example. ``dataset[i]`` returns ``(waveform, label)``: a fixed-length
(``clip_seconds``) float32 waveform at ``sample_rate`` and the integer class index.

Bad files follow ``on_error``: ``"raise"`` (the default) raises the loader's error naming the file;
``"skip"`` warns once per file, leaves it out, and counts it in :attr:`AudioClipDataset.skipped`. Call
:meth:`AudioClipDataset.validate` before training to read every file once (filling the cache) and drop
the bad ones up front, so no batch ever meets one.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Iterable, Sequence

import torch

from .._deprecated import renamed
from ..errors import AudioLoadError, NoAudioFilesError, ParameterError
from ..io import load_audio
from ..io.framing import fix_length
from .cache import WaveformCache
from .items import ClipItem, folder_items, manifest_items

# Classes with fewer clips than this cannot form an anchor-positive pair; they are reported.
MIN_CLIPS_PER_CLASS = 2


class AudioClipDataset(torch.utils.data.Dataset):
    """Clips with class labels, loaded as fixed-length waveforms.

    ``dataset[i]`` is ``(waveform, label)``: a (time,) float32 mono waveform, cropped or padded to
    ``round(clip_seconds * sample_rate)`` samples before ``augment``, and the class index, the position of
    the item's class name in the sorted :attr:`classes`.

    Args:
        items (Sequence[ClipItem]): the clips (at least one).
        sample_rate (int, optional): waveforms are resampled to this rate in Hz. Default: ``16000``.
        clip_seconds (float or None, optional): length of each example (> 0); ``None`` returns whole clips
            (variable length). Default: ``1.0``.
        crop (str, optional): ``"random"`` (training), ``"center"`` (evaluation) or ``"start"``, see
            ``audiosiam.io.fix_length()``. Default: ``"random"``.
        augment (Callable or None, optional): ``augment(waveform, generator) -> waveform``, applied after the
            crop with the example's own generator. Default: ``None``.
        seed (int, optional): with ``set_epoch``, makes crops and augmentations reproducible per (epoch,
            index). Default: ``0``.
        cache (WaveformCache or str or os.PathLike or None, optional): a :class:`WaveformCache`, or a folder
            path for one; ``None`` keeps decoded clips in memory only (up to ``memory_cache_mb``).
            Default: ``None``.
        on_error (str, optional): ``"raise"`` or ``"skip"`` (see the module docstring); a skipped clip is
            replaced by another clip not known to be bad, of the same class where there is one. Default: ``"raise"``.
        memory_cache_mb (float, optional): MiB of decoded whole clips kept in memory (per process), with or
            without ``cache``; clips beyond it are read again each time. Default: ``4096``.

    Raises:
        ParameterError: an unknown ``on_error`` or ``crop``, or ``clip_seconds`` not positive.
        NoAudioFilesError: ``items`` is empty.

    Attributes:
        items (list[ClipItem]): the clips, in the order of the indices.
        classes (list[str]): the class names, sorted; a label is a position in this list.
        labels (list[int]): the class index of each clip.
        skipped (list[tuple[str, str]]): ``(path, reason)`` of each clip left out with ``on_error="skip"``.
    """

    def __init__(
        self,
        items: Sequence[ClipItem],
        *,
        sample_rate: int = 16000,
        clip_seconds: float | None = 1.0,
        crop: str = "random",
        augment: Callable | None = None,
        seed: int = 0,
        cache: WaveformCache | str | os.PathLike | None = None,
        on_error: str = "raise",
        memory_cache_mb: float = 4096,
    ):
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        if crop not in ("random", "center", "start"):
            raise ParameterError(f"crop={crop!r}: expected 'random', 'center' or 'start'")
        if clip_seconds is not None and clip_seconds <= 0:
            raise ParameterError(f"clip_seconds={clip_seconds}: must be positive (or None for whole clips)")
        if not items:
            raise NoAudioFilesError("the dataset has no clips")
        self.items = list(items)
        self.sample_rate = int(sample_rate)
        self.clip_seconds = clip_seconds
        self.crop = crop
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.on_error = on_error
        self.cache = cache if isinstance(cache, WaveformCache) or cache is None else WaveformCache(cache)
        self._memory: dict[str, torch.Tensor] = {}
        self._memory_budget = int(memory_cache_mb * 2**20)
        self._memory_used = 0
        self.skipped: list[tuple[str, str]] = []
        self._reindex()

    # ------------------------------------------------------------------ labels
    def _reindex(self) -> None:
        self.classes = sorted({item.label for item in self.items})
        lookup = {name: i for i, name in enumerate(self.classes)}
        self.labels = [lookup[item.label] for item in self.items]

    @property
    def paths(self) -> list[str]:
        """The path of each clip, in item order."""
        return [item.path for item in self.items]

    @property
    def groups(self) -> list[str]:
        """The group of each clip (a speaker, a recording session), in item order."""
        return [item.group for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Make the random crops and augmentations of the next pass depend on ``epoch``.

        Args:
            epoch (int): the epoch about to start; the same epoch gives the same examples again.
        """
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ loading
    def load(self, index: int) -> torch.Tensor:
        """The whole clip ``index`` as a (time,) waveform (cached).

        Neither cropped nor augmented, and ``on_error`` does not apply: a bad file raises.

        Args:
            index (int): position of the clip in :attr:`items`.

        Returns:
            Tensor: (time,) float32 mono at ``sample_rate``, from memory, the :class:`WaveformCache`, or
            decoded (and then cached).

        Raises:
            AudioLoadError: the file cannot be read (see :func:`~audiosiam.io.load_audio`).
        """
        path = self.items[index].path
        wave = self._memory.get(path)
        if wave is not None:
            return wave
        if self.cache is not None:
            wave = self.cache.get(path, self.sample_rate)
        if wave is None:
            wave = load_audio(path, self.sample_rate)
            if self.cache is not None:
                self.cache.put(path, self.sample_rate, wave)
        size = wave.numel() * wave.element_size()
        if self._memory_used + size <= self._memory_budget:
            self._memory[path] = wave
            self._memory_used += size
        return wave

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, int(index))) & 0x7FFFFFFF)
        try:
            wave = self.load(index)
        except AudioLoadError as exc:
            if self.on_error == "raise":
                raise
            self._note_skip(self.items[index].path, exc)
            return self[self._substitute(index)]
        if self.clip_seconds is not None:
            wave = fix_length(
                wave, int(round(self.clip_seconds * self.sample_rate)), mode=self.crop, generator=generator
            )
        if self.augment is not None:
            wave = self.augment(wave, generator)
        return wave, self.labels[index]

    def _note_skip(self, path: str, exc: Exception) -> None:
        if all(p != path for p, _ in self.skipped):
            self.skipped.append((path, str(exc)))
            warnings.warn(f"audiosiam: skipping unreadable clip: {exc}", UserWarning, stacklevel=3)

    def _substitute(self, index: int) -> int:
        """Another clip of the same class that has not failed (deterministic), for on_error='skip'."""
        bad = {p for p, _ in self.skipped}
        label = self.labels[index]
        n = len(self.items)
        for step in range(1, n):
            j = (index + step) % n
            if self.labels[j] == label and self.items[j].path not in bad:
                return j
        for step in range(1, n):
            j = (index + step) % n
            if self.items[j].path not in bad:
                return j
        raise NoAudioFilesError("every clip of the dataset failed to load")

    def validate(self, *, progress: bool = False) -> "AudioClipDataset":
        """Read every clip once (warming the caches). Bad clips raise (``on_error="raise"``) or are dropped
        (``"skip"``, with one warning each and a summary).

        Dropping clips renumbers the classes (one whose every clip was bad disappears).

        Args:
            progress (bool, optional): show a ``tqdm`` progress bar. Default: ``False``.

        Returns:
            AudioClipDataset: this dataset, now holding only readable clips.

        Raises:
            AudioLoadError: the first bad clip, with ``on_error="raise"``.
            NoAudioFilesError: every clip failed to load.
        """
        iterator: Iterable[int] = range(len(self.items))
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="reading clips", unit="clip")
        keep = []
        for i in iterator:
            try:
                self.load(i)
                keep.append(self.items[i])
            except AudioLoadError as exc:
                if self.on_error == "raise":
                    raise
                self._note_skip(self.items[i].path, exc)
        if len(keep) != len(self.items):
            warnings.warn(
                f"audiosiam: {len(self.items) - len(keep)} of {len(self.items)} clips were unreadable and "
                "left out (see dataset.skipped)",
                UserWarning,
                stacklevel=2,
            )
            if not keep:
                raise NoAudioFilesError("every clip of the dataset failed to load")
            self.items = keep
            self._reindex()
        return self

    # ------------------------------------------------------------------ reporting
    def class_counts(self) -> dict[str, int]:
        """Clips per class name, in the order of :attr:`classes`."""
        counts = {name: 0 for name in self.classes}
        for item in self.items:
            counts[item.label] += 1
        return counts

    def summary(self, *, durations: bool = False) -> str:
        """Classes, clip counts (and total duration if asked: this reads file headers), and the classes too
        small to give a positive pair.

        Args:
            durations (bool, optional): add the total duration in minutes (files whose header cannot be read
                count as zero). Default: ``False``.

        Returns:
            str: a few lines of text, ready to print.
        """
        counts = self.class_counts()
        lines = [f"{len(self.items)} clips in {len(counts)} classes"]
        if durations:
            import soundfile as sf

            seconds = 0.0
            for item in self.items:
                try:
                    seconds += sf.info(item.path).duration
                except (RuntimeError, OSError):
                    pass
            lines[0] += f", {seconds / 60:.1f} minutes of audio"
        sizes = sorted(counts.values())
        lines.append(f"clips per class: min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}")
        small = [name for name, n in counts.items() if n < MIN_CLIPS_PER_CLASS]
        if small:
            lines.append(
                f"{len(small)} classes have fewer than {MIN_CLIPS_PER_CLASS} clips (no positive pair): "
                + ", ".join(small[:10])
                + (" ..." if len(small) > 10 else "")
            )
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable clips skipped")
        return "\n".join(lines)

    @classmethod
    def from_folder(cls, root: str | os.PathLike, **kwargs) -> "AudioClipDataset":
        """The dataset of ``root/<class>/**/<audio file>`` (nesting: ``folder_items()``).

        Args:
            root (str or os.PathLike): the folder of class subfolders.
            **kwargs (Any): options of :class:`AudioClipDataset` (``sample_rate``, ``clip_seconds``, ...).

        Returns:
            AudioClipDataset: the dataset.
        """
        return cls(folder_items(root), **kwargs)

    @classmethod
    def from_manifest(
        cls,
        csv_path: str | os.PathLike,
        *,
        label_column: str | Sequence[str] = "label",
        path_column: str = "path",
        where: dict[str, Sequence[str]] | None = None,
        exclude: dict[str, Sequence[str]] | None = None,
        group_column: str | None = None,
        **kwargs,
    ) -> "AudioClipDataset":
        """The dataset of a CSV manifest (``path`` and label columns: ``manifest_items()``).

        Args:
            csv_path (str or os.PathLike): the manifest; relative paths are relative to its folder.
            label_column (str or Sequence[str], optional): the column naming the class, or several joined with
                ``"|"``. Default: ``"label"``.
            path_column (str, optional): the column holding each clip's file. Default: ``"path"``.
            where (dict[str, Sequence[str]] or None, optional): keep only rows whose column value is listed.
                Default: ``None``.
            exclude (dict[str, Sequence[str]] or None, optional): drop the rows whose column value is listed.
                Default: ``None``.
            group_column (str or None, optional): column recorded as the group. Default: ``None``.
            **kwargs (Any): options of :class:`AudioClipDataset` (``sample_rate``, ``clip_seconds``, ...).

        Returns:
            AudioClipDataset: the dataset.
        """
        items = manifest_items(
            csv_path,
            label_column=label_column,
            path_column=path_column,
            where=where,
            exclude=exclude,
            group_column=group_column,
        )
        return cls(items, **kwargs)

    def subset(self, keep: Callable[[ClipItem], bool]) -> "AudioClipDataset":
        """A dataset of the items for which ``keep(item)`` is true, with the same settings.

        The new dataset shares this one's decoded clips in memory; its class indices are renumbered over the
        classes it keeps.

        Args:
            keep (Callable[[ClipItem], bool]): whether an item belongs to the subset.

        Returns:
            AudioClipDataset: the subset.

        Raises:
            NoAudioFilesError: ``keep`` is false for every item.
        """
        items = [item for item in self.items if keep(item)]
        clone = AudioClipDataset(
            items,
            sample_rate=self.sample_rate,
            clip_seconds=self.clip_seconds,
            crop=self.crop,
            augment=self.augment,
            seed=self.seed,
            cache=self.cache,
            on_error=self.on_error,
            memory_cache_mb=self._memory_budget / 2**20,
        )
        clone._memory = self._memory  # share decoded clips
        return clone


def _renamed(old: str, new: Callable) -> Callable:
    """A deprecated spelling of ``new`` under its old name: it warns, naming the new one, then calls it."""

    def alias(*args, **kwargs):
        renamed(f"{old}(...)", f"{new.__qualname__}(...)")
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated spelling of :meth:`{new.__qualname__}` (a function named like a class)."
    return alias


AudioFolderDataset = _renamed("AudioFolderDataset", AudioClipDataset.from_folder)


ManifestDataset = _renamed("ManifestDataset", AudioClipDataset.from_manifest)


def combine_datasets(
    sources: dict[str, AudioClipDataset] | Sequence[tuple[str, AudioClipDataset]], **kwargs
) -> AudioClipDataset:
    """One dataset from several, class names prefixed with the source name (``"fsdd/3"``), so that equal
    names from different sources stay different classes.

    Args:
        sources (dict[str, AudioClipDataset] or Sequence[tuple[str, AudioClipDataset]]): the datasets by
            source name, in order; items keep their paths and groups.
        **kwargs (Any): set the combined dataset's options (:class:`AudioClipDataset`); defaults: those of
            the first source (``memory_cache_mb`` excepted, which takes its usual default).

    Returns:
        AudioClipDataset: the combined dataset.

    Raises:
        ParameterError: ``sources`` is empty.
    """
    pairs = list(sources.items()) if isinstance(sources, dict) else list(sources)
    if not pairs:
        raise ParameterError("sources: nothing to combine")
    items = [ClipItem(it.path, f"{name}/{it.label}", it.group) for name, ds in pairs for it in ds.items]
    first = pairs[0][1]
    options = dict(
        sample_rate=first.sample_rate,
        clip_seconds=first.clip_seconds,
        crop=first.crop,
        augment=first.augment,
        seed=first.seed,
        cache=first.cache,
        on_error=first.on_error,
    )
    options.update(kwargs)
    return AudioClipDataset(items, **options)
