"""Embeddings on disk: a ``.npy`` matrix and the sources of its rows beside it, written together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import (
    ParameterError,
)
from ..files import atomic_write_together, finish_interrupted_commit, spreadsheet_safe
from ..paths import not_a_regular_file


def write_embeddings(path: str | os.PathLike, embeddings, sources: Sequence[str]) -> tuple[Path, Path]:
    """Write ``embed``'s output pair as one: ``path`` (``.npy`` appended when missing: float32, (N, D)) and
    its index ``path`` with ``.csv`` (columns ``row,path``: which input each row is, cells made
    ``spreadsheet_safe``). A failure (a full disk) changes neither file; a writer killed
    between the two renames is completed by the next write or :func:`read_embeddings` of the pair.

    Args:
        path (str or os.PathLike): the ``.npy`` file.
        embeddings (Tensor or array): (N, D) embeddings.
        sources (sequence of str): N descriptions of the rows (file paths).

    Returns:
        tuple[Path, Path]: the ``.npy`` and ``.csv`` files.

    Raises:
        ParameterError: ``path`` is a folder or the pair cannot be written (the error names the file).
    """
    import csv

    out = Path(path)
    if out.suffix != ".npy":  # numpy would add it anyway: name the file it really is
        out = out.with_name(out.name + ".npy")
    index = out.with_suffix(".csv")
    array = np.asarray(embeddings.detach().cpu() if torch.is_tensor(embeddings) else embeddings, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(sources):
        raise ParameterError(f"embeddings: expected {len(sources)} rows (one per source), got shape {array.shape}")
    for target in (out, index):
        if target.is_dir():
            raise ParameterError(f"{target}: is a folder; give a file name to write")

    def write_index(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "path"])
            writer.writerows([row, spreadsheet_safe(str(source))] for row, source in enumerate(sources))

    try:
        atomic_write_together({out: lambda tmp: np.save(tmp, array), index: write_index})
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) and not Path(exc.filename).name.startswith(".") else out
        raise ParameterError(
            f"{where}: cannot be written ({exc.strerror or exc}); nothing was changed, choose another place"
        ) from None
    return out, index


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a pair written by :func:`write_embeddings` (``audiosiam embed``), completing an interrupted write
    first and refusing a pair whose halves do not match.

    Args:
        path (str or os.PathLike): the ``.npy`` file (its ``.csv`` index beside it).

    Returns:
        tuple[numpy.ndarray, list[str]]: the (N, D) float32 embeddings and, per row, its source.

    Raises:
        ParameterError: a file is missing or damaged, or the index does not describe the array's rows.
    """
    import csv

    out = Path(path)
    index = out.with_suffix(".csv")
    try:
        finish_interrupted_commit(out)
    except OSError as exc:  # a read-only folder: cannot complete it, so cannot trust the pair
        raise ParameterError(
            f"{out}: its write was interrupted and cannot be completed here ({exc.strerror or exc}); "
            "run `audiosiam embed` again"
        ) from None
    for target in (out, index):
        found = not_a_regular_file(target)
        if found is not None:
            raise ParameterError(f"{target}: {found[1]} (write it with `audiosiam embed FILES --out {out}`)")
    try:
        array = np.load(out, allow_pickle=False, mmap_mode="r")
        with open(index, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{out}: not a readable embedding pair ({exc}); run `audiosiam embed` again") from None
    body = rows[1:]
    numbered = all(len(r) == 2 and r[0] == str(i) for i, r in enumerate(body))
    if rows[:1] != [["row", "path"]] or not numbered or array.ndim != 2 or len(body) != array.shape[0]:
        raise ParameterError(
            f"{out}: its index {index.name} lists {len(body)} rows for {array.shape[0] if array.ndim else 0} "
            "embeddings, or is damaged; the two files are not one pair: run `audiosiam embed` again"
        )
    from ..files import _FORMULA_STARTS

    def source(cell: str) -> str:  # undo spreadsheet_safe's quote
        return cell[1:] if cell[:1] == "'" and cell[1:].startswith(_FORMULA_STARTS) else cell

    return np.array(array, dtype=np.float32), [source(r[1]) for r in body]
