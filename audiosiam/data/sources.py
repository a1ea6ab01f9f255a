"""Training data sources: class folders, CSV manifests and JSON recipes, turned into clip items.

A recipe names several sources at once (``audiosiam train recipe.json``; relative paths are relative to
the recipe)::

    {"sources":    [{"path": ..., "name": ..., "label_columns": [...], "where": {...}, "exclude": {...},
                     "group_column": ..., "weight": 1.0}],
     "unlabelled": [{"path": ..., "name": ..., "weight": 1.0}, "or/just/a/folder"],
     "background": ["noise/folder", "ambience.csv"]}

Every item knows its source and whether it is label-free as fields (:class:`~audiosiam.data.ClipItem`);
its class name, ``source/label`` (label-free: ``unlabelled/source/path``), only keeps classes of two
sources apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ..errors import NoAudioFilesError, ParameterError
from ..io import find_audio_files, load_audio
from ..models.info import ModelInfo
from .items import ClipItem, folder_items, manifest_columns, manifest_items


@dataclass
class DataSource:
    """One data source: a class folder or a CSV manifest (``label_columns`` joined with "|").

    A folder's classes are its subfolders; the manifest options (``label_columns``, ``where``,
    ``group_column``, ``exclude``) apply to a ``.csv`` only.

    Args:
        path (str): folder or ``.csv``.
        name (str, optional): prefix of its class names; empty for ``source<i>`` (labelled, ``i`` its position)
            or ``free`` (label-free), given by ``source_items()``. Default: ``""``.
        label_columns (list[str], optional): manifest columns naming the class. Default: ``["label"]``.
        where (dict[str, list[str]] or None, optional): keep only rows whose column value is listed, e.g.
            ``{"digit": ["0", "1"]}``; ``None`` keeps every row. Default: ``None``.
        group_column (str or None, optional): manifest column recorded as each clip's group (speaker,
            recording source); ``None``: no groups. Default: ``None``.
        exclude (dict[str, list[str]] or None, optional): rows to drop, e.g. ``{"speaker": ["theo"]}``.
            Default: ``None``.
        weight (float, optional): this source's relative share of the drawn classes (training with
            ``balance_sources``). Default: ``1.0``.
    """

    path: str
    name: str = ""
    label_columns: list[str] = field(default_factory=lambda: ["label"])
    where: dict[str, list[str]] | None = None
    group_column: str | None = None
    exclude: dict[str, list[str]] | None = None
    weight: float = 1.0

    def items(self) -> list[ClipItem]:
        """The source's clips with their labels (as in the folder or manifest)."""
        path = Path(self.path)
        if path.is_dir():
            return folder_items(path)
        return manifest_items(
            path,
            label_column=self.label_columns,
            where=self.where,
            exclude=self.exclude,
            group_column=self.group_column,
        )

    def files(self) -> list[str]:
        """Every audio file of the source, labels ignored (label-free training, backgrounds)."""
        path = Path(self.path)
        if path.is_dir():
            return [str(p) for p in find_audio_files(path)]
        return [
            it.path
            for it in manifest_items(
                path, label_column=self.label_columns or ["path"], where=self.where, exclude=self.exclude
            )
        ]


def source_items(
    labelled: Sequence[DataSource], unlabelled: Sequence[DataSource] = (), *, copies: int = 2
) -> list[ClipItem]:
    """Items of every source, class names made unique per source; each label-free clip is its own class
    with ``copies`` entries, so a PK batch can draw several views of it.

    Args:
        labelled (Sequence[DataSource]): sources whose clips keep their labels, as ``name/label``
            (``name`` defaults to ``source<i>``, ``i`` the source's position).
        unlabelled (Sequence[DataSource], optional): label-free sources: every audio file becomes the class
            ``unlabelled/name/path`` (``name`` defaults to ``free``), with no group. Default: ``()``.
        copies (int, optional): entries per label-free clip (a PK batch needs at least two of a class).
            Default: ``2``.

    Returns:
        list[ClipItem]: the labelled items first, in source order, then the label-free ones.

    Raises:
        NoAudioFilesError: the sources hold no clip at all.
    """
    items: list[ClipItem] = []
    for i, source in enumerate(labelled):
        name = source.name or f"source{i}"
        items += [ClipItem(it.path, f"{name}/{it.label}", it.group, source=name) for it in source.items()]
    for source in unlabelled:
        name = source.name or "free"
        items += [
            ClipItem(f, f"unlabelled/{name}/{f}", "", source=name, label_free=True)
            for f in source.files()
            for _ in range(copies)
        ]
    if not items:
        raise NoAudioFilesError("no training clips: give at least one data source")
    return items


def load_background(paths: Sequence[str], sample_rate: int) -> list[torch.Tensor]:
    """Waveforms of every file of background folders and manifests, for mixing into training examples.

    Args:
        paths (Sequence[str]): folders (every audio file below them) and ``.csv`` manifests (every row's
            file, labels ignored).
        sample_rate (int): rate in Hz every clip is resampled to, as in :func:`~audiosiam.io.load_audio`.

    Returns:
        list[Tensor]: one (time,) float32 mono waveform per file, in order.

    Raises:
        AudioLoadError: a file cannot be read (see :func:`~audiosiam.io.load_audio`).
        NoAudioFilesError: a folder holds no audio file.
    """
    clips = []
    for p in paths:
        clips += [load_audio(f, sample_rate) for f in DataSource(p, label_columns=["path"]).files()]
    return clips


def load_sources(
    paths: Sequence[str],
    *,
    label_columns: Sequence[str] = ("label",),
    where: dict[str, list[str]] | None = None,
    group_column: str | None = None,
    exclude: dict[str, list[str]] | None = None,
):
    """``(labelled, unlabelled, background)`` source lists from command-line DATA arguments.

    A folder or ``.csv`` becomes one labelled source with the given options; a ``.json`` recipe lists
    several (module docstring).

    Args:
        paths (Sequence[str]): the DATA arguments: folders of class subfolders, ``.csv`` manifests and
            ``.json`` recipes. A folder or manifest is named by its folder name or file stem.
        label_columns (Sequence[str], optional): manifest columns naming the class, for the ``.csv``
            arguments (a recipe gives its own). Default: ``("label",)``.
        where (dict[str, list[str]] or None, optional): keep only rows whose column value is listed, for the
            ``.csv`` arguments. Default: ``None``.
        group_column (str or None, optional): manifest column recorded as each clip's group, for the ``.csv``
            arguments. Default: ``None``.
        exclude (dict[str, list[str]] or None, optional): rows to drop (e.g. ``{"speaker": ["theo"]}``, to
            hold a speaker out); added to every labelled and unlabelled manifest source that has the
            column, recipes' included; at least one must. Default: ``None``.

    Returns:
        tuple[list[DataSource], list[DataSource], list[str]]: the labelled and the unlabelled sources, and
        the background folders and manifests (recipe paths resolved against the recipe's folder).

    Raises:
        ParameterError: an argument that is not a folder, ``.csv`` or ``.json``, or an ``exclude`` column
            that no manifest has.
    """
    labelled, unlabelled, background = [], [], []
    for raw in paths:
        path = Path(raw)
        if path.suffix == ".json":
            recipe = json.loads(path.read_text())
            base = path.parent

            def resolve(p):
                return str(p if Path(p).is_absolute() else base / p)

            for s in recipe.get("sources", []):
                labelled.append(
                    DataSource(
                        resolve(s["path"]),
                        s.get("name", ""),
                        list(s.get("label_columns", ["label"])),
                        s.get("where"),
                        s.get("group_column"),
                        s.get("exclude"),
                        float(s.get("weight", 1.0)),
                    )
                )
            for s in recipe.get("unlabelled", []):
                s = {"path": s} if isinstance(s, str) else s
                unlabelled.append(
                    DataSource(
                        resolve(s["path"]),
                        s.get("name", ""),
                        list(s.get("label_columns", [])),
                        s.get("where"),
                        exclude=s.get("exclude"),
                        weight=float(s.get("weight", 1.0)),
                    )
                )
            background += [resolve(p) for p in recipe.get("background", [])]
        elif path.is_dir() or path.suffix == ".csv":
            labelled.append(
                DataSource(str(path), path.stem if path.suffix else path.name, list(label_columns), where, group_column)
            )
        else:
            raise ParameterError(f"{path}: expected a folder of class subfolders, a .csv manifest or a .json recipe")
    manifests = [(s, manifest_columns(s.path)) for s in labelled + unlabelled if exclude and not Path(s.path).is_dir()]
    for column, values in (exclude or {}).items():
        having = [s for s, header in manifests if column in header]
        if not having:
            raise ParameterError(
                f"exclude {column}={','.join(values)}: no manifest among "
                f"{[s.path for s, _ in manifests]} has a {column!r} column"
            )
        for s in having:
            s.exclude = {**(s.exclude or {}), column: [*(s.exclude or {}).get(column, []), *values]}
    return labelled, unlabelled, background


def validation_items(info: dict, extra: Sequence[str] = ()) -> list[ClipItem]:
    """The clips of a checkpoint's validation classes (held out of its training), and of ``extra`` sources.

    The classes are those of ``info["validation_classes"]``, read from the sources in ``info["sources"]``
    (what ``scripts/fit_calibration.py`` fits the calibration map on).

    Args:
        info (dict): the checkpoint's ``model.info``.
        extra (Sequence[str], optional): recipes (``.json``) or manifests of more classes the model never
            trained on. Default: ``()``.

    Returns:
        list[ClipItem]: the items, each with its source name (the domain of calibration episodes).

    Raises:
        ParameterError: an ``extra`` class the model trained on, or no clip at all.
    """
    info = ModelInfo(info)
    held = set(info.validation_classes)
    sources = [DataSource(**s) for s in info.sources]
    items = [it for it in source_items(sources) if it.label in held] if held else []
    trained = set(info.label_set)
    for path in extra:
        labelled, _, _ = load_sources([path])
        more = source_items(labelled)
        clash = sorted({it.label for it in more} & trained)
        if clash:
            raise ParameterError(f"--extra {path}: classes {clash[:5]} were trained on; calibrate on unseen classes")
        items += more
    if not items:
        raise ParameterError("no validation clips: the checkpoint lists no validation classes and no --extra was given")
    return items
