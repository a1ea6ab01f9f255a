"""Where labelled clips come from: :class:`ClipItem` (a file, its class, group and source), read from class
folders (:func:`folder_items`) or CSV manifests (:func:`manifest_items`). Datasets, sources and the
commands' ``--support`` all read clips through these."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import NoAudioFilesError, ParameterError
from ..io import find_audio_files


@dataclass(frozen=True)
class ClipItem:
    """One clip: its file, class name, group, and where it came from.

    Attributes:
        path (str): the audio file.
        label (str): the class name (unique across sources when built by ``audiosiam.data.sources``).
        group (str, optional): e.g. the speaker: lets evaluation keep support and query apart; empty for
            none. Default: ``""``.
        source (str, optional): the data source it came from (training balances sources). Default: ``""``.
        label_free (bool, optional): its own class: positives are other crops and augmentations of it.
            Default: ``False``.
    """

    path: str
    label: str  # the class name (unique across sources when built by data.sources)
    group: str = ""  # e.g. the speaker: lets evaluation keep support and query apart
    source: str = ""  # the data source it came from (training balances sources)
    label_free: bool = False  # its own class: positives are other crops and augmentations of it


def folder_items(root: str | os.PathLike, *, min_classes: int = 1, what: str | None = None) -> list[ClipItem]:
    """Items of ``root/<class>/**/<file>``: the one reader of class folders (training, evaluation, the
    ``--support`` of classify and enroll).

    Rules: the FIRST folder level under ``root`` names the class; deeper folders (e.g.
    ``root/dog/recorder2/a.wav``) are part of that class, and the second level, when present, is recorded
    as the group (e.g. speaker or source). Hidden folders (``.name``) are skipped. A class folder with no
    audio is left out with a warning; audio files directly in ``root`` are ignored with a warning.

    Args:
        root (str or os.PathLike): the folder of class subfolders.
        min_classes (int, optional): refuse (ParameterError) fewer classes than this. Default: ``1``.
        what (str or None, optional): how messages name the folder (e.g. ``"--support examples/"``); ``None``:
            the path. Default: ``None``.

    Returns:
        list[ClipItem]: one item per audio file, classes in sorted order and files sorted within each.

    Raises:
        NoAudioFilesError: ``root`` is not a folder, or no class folder holds audio.
        ParameterError: fewer than ``min_classes`` classes.
    """
    from ..io import AUDIO_EXTENSIONS

    root = Path(root)
    name = what or str(root)
    if not root.is_dir():
        raise NoAudioFilesError(
            f"{name}: not a folder; expected one subfolder of clips per class ({root}/<class>/<file>)"
        )
    items = []
    seen: set[Path] = set()
    top = root.resolve()
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = class_dir.resolve()
        # a link back to the folder (or above it), or a second name for a class folder, is no new class
        if target == top or target in top.parents or target in seen:
            warnings.warn(f"{class_dir}: links to {target}, a folder already read; left out", UserWarning, stacklevel=2)
            continue
        seen.add(target)
        try:
            files = find_audio_files(class_dir)
        except NoAudioFilesError:
            warnings.warn(
                f"{class_dir}: class folder holds no audio files; class {class_dir.name!r} is left out",
                UserWarning,
                stacklevel=2,
            )
            continue
        for path in files:
            parts = path.relative_to(root).parts
            items.append(ClipItem(str(path), parts[0], parts[1] if len(parts) > 2 else ""))
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if stray:
        warnings.warn(
            f"{root}: {len(stray)} audio file(s) directly in the folder are ignored (e.g. {stray[0]}); "
            "put each clip in the subfolder named after its class",
            UserWarning,
            stacklevel=2,
        )
    if not items:
        raise NoAudioFilesError(f"{name}: no audio files inside class subfolders (expected {root}/<class>/<file>)")
    classes = sorted({it.label for it in items})
    if len(classes) < min_classes:
        raise ParameterError(
            f"{name}: only class {classes[0]!r}; this needs at least {min_classes} classes, one subfolder each"
        )
    return items


def manifest_columns(csv_path: str | os.PathLike) -> list[str]:
    """The column names of a CSV manifest (its header).

    Args:
        csv_path (str or os.PathLike): the manifest.

    Returns:
        list[str]: the columns, in file order; empty for an empty file.

    Raises:
        NoAudioFilesError: there is no such file.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise NoAudioFilesError(f"{csv_path}: no such manifest file")
    with open(csv_path, newline="") as handle:
        return csv.DictReader(handle).fieldnames or []


def manifest_items(
    csv_path: str | os.PathLike,
    *,
    label_column: str | Sequence[str] = "label",
    path_column: str = "path",
    where: dict[str, Sequence[str]] | None = None,
    exclude: dict[str, Sequence[str]] | None = None,
    group_column: str | None = None,
) -> list[ClipItem]:
    """Items of a CSV manifest. Relative paths are relative to the manifest's folder.

    Args:
        csv_path (str or os.PathLike): the manifest, with a header row.
        label_column (str or Sequence[str], optional): the column naming the class, or several joined with
            ``"|"`` (e.g. voice and phrase). A row whose label columns are all empty is unlabelled and
            skipped. Default: ``"label"``.
        path_column (str, optional): the column holding each clip's file. Default: ``"path"``.
        where (dict[str, Sequence[str]] or None, optional): keep only rows whose column value is in the given
            list, e.g. ``{"digit": ["0", "1"]}`` (values compared as strings). Default: ``None``.
        exclude (dict[str, Sequence[str]] or None, optional): drop the rows whose column value is in the
            given list, e.g. ``{"speaker": ["theo"]}``. Default: ``None``.
        group_column (str or None, optional): column recorded as the group (e.g. ``"speaker"``); ``None``:
            no groups. Default: ``None``.

    Returns:
        list[ClipItem]: one item per kept row, in file order.

    Raises:
        NoAudioFilesError: there is no such file, or no row is left.
        ParameterError: a named column is not in the header.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise NoAudioFilesError(f"{csv_path}: no such manifest file")
    columns = [label_column] if isinstance(label_column, str) else list(label_column)
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        needed = [path_column, *columns, *(where or {}), *(exclude or {}), *([group_column] if group_column else [])]
        missing = [c for c in needed if c not in header]
        if missing:
            raise ParameterError(f"{csv_path}: column(s) {missing} not found; the manifest has {header}")
        allowed = {k: {str(v) for v in values} for k, values in (where or {}).items()}
        dropped = {k: {str(v) for v in values} for k, values in (exclude or {}).items()}
        items = []
        for row in reader:
            if any(row[k] not in values for k, values in allowed.items()):
                continue
            if any(row[k] in values for k, values in dropped.items()):
                continue
            label = "|".join(row[c] for c in columns)
            if not label.strip("|"):
                continue  # unlabelled row
            path = Path(row[path_column])
            path = path if path.is_absolute() else csv_path.parent / path
            items.append(ClipItem(str(path), label, row[group_column] if group_column else ""))
    if not items:
        raise NoAudioFilesError(f"{csv_path}: no rows left (where {where!r}, exclude {exclude!r})")
    return items
