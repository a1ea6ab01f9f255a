"""The report of ``audiosiam classify --report``: every answer beside the sound it answers.

A row per query (the command's own row, so the page shows the table's answers and numbers) with a
player, the nearest enrolled clips (each playable) and a small spectrogram; the embedding map of the
queries, the examples and the class prototypes; a summary of the classes enrolled.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from .audio import AudioSources
from .page import render, write_page
from .pictures import plotted, spectrogram_uri

# Enrolled clips given a player in the class summary, per class (the neighbours of queries get one too).
EXAMPLES_PER_CLASS = 4


def write_classification(
    path: str | os.PathLike,
    rows: Sequence[dict],
    classifier,
    embeddings=None,
    *,
    neighbours: int = 3,
    options: dict | None = None,
) -> Path:
    """Write the HTML report of a classification.

    Args:
        path (str or os.PathLike): the page to write (atomically); linked audio is addressed relative to its
            folder (the size rule: ``audiosiam.report.audio``).
        rows (Sequence[dict]): the command's rows, one per query, in its order and with its columns; they
            need ``"file"`` and ``"label"``, and ``"start"``/``"end"`` (seconds) where a row is a stretch of
            its file (``classify --segments``). ``"prob"`` (else ``"score"``) is what the number filter
            compares.
        classifier (FewShotClassifier): the fitted classifier that answered; its gallery gives the enrolled
            clips.
        embeddings (Tensor or None, optional): (len(rows), D) embeddings of the rows' clips, for the nearest
            enrolled clips and the embedding map; ``None``: neither is shown. Default: ``None``.
        neighbours (int, optional): nearest enrolled clips shown per query. Default: ``3``.
        options (dict or None, optional): the settings that made the answers (e.g. ``vars(args)`` of the
            command), shown as given; ``None``: the classifier's parameters. Default: ``None``.

    Returns:
        Path: ``path``.

    Raises:
        ParameterError: ``path`` is a folder or cannot be written.
    """
    rows = [dict(row) for row in rows]
    sources = AudioSources(path)
    gallery = classifier.gallery_
    classes = list(gallery.classes)

    nearest: list[list[tuple[int, float]]] = [[] for _ in rows]
    if embeddings is not None and len(rows) and len(gallery):
        sims, idx = gallery.search(embeddings, min(neighbours, len(gallery)))
        nearest = [list(zip(i.tolist(), s.tolist())) for i, s in zip(idx, sims)]
    wanted = {i for row in nearest for i, _ in row}
    seen: Counter = Counter()
    for i, label in enumerate(gallery.labels):
        seen[label] += 1
        if seen[label] <= EXAMPLES_PER_CLASS:
            wanted.add(i)
    enrolled = {i: _enrolled_clip(gallery, i, sources) for i in sorted(wanted)}

    queries = []
    for n, row in enumerate(rows):
        start, end = row.get("start"), row.get("end")
        if start is None or end is None:
            sound, picture = sources.clip(row["file"]), spectrogram_uri(row["file"])
        else:
            sound = sources.stretch(row["file"], start, end, context=0.0)
            picture = spectrogram_uri(row["file"], start, end)
        queries.append(
            {
                "row": row,
                "id": f"query-{n}",
                "sound": sound,
                "spectrogram": picture,
                "nearest": [(enrolled[i], similarity) for i, similarity in nearest[n]],
            }
        )

    columns = list(rows[0]) if rows else ["file", "label"]
    number = "prob" if "prob" in columns else "score"
    picture = None
    if embeddings is not None and len(rows):
        from ..plotting import plot_gallery_and_queries

        files, labels = [r["file"] for r in rows], [str(r["label"]) for r in rows]
        picture = plotted(
            lambda p: plot_gallery_and_queries(classifier, embeddings, files, labels, p), "the embedding map"
        )
    html = render(
        "classification.html",
        title=f"audiosiam classify: {len(rows)} answer{'s' * (len(rows) != 1)}",
        columns=columns,
        numeric=_numeric_columns(rows, columns),
        number=number,
        queries=queries,
        answer_counts=sorted(Counter(str(r["label"]) for r in rows).items()),
        filter_labels=sorted({str(r["label"]) for r in rows} | set(classes)),
        classes=_class_summary(classifier, enrolled),
        enrolled=[clip for clip in enrolled.values()],
        embedding_map=picture,
        options=_options(options if options is not None else classifier.get_params(deep=False)),
        embedded_mb=sources.embedded_bytes / 2**20,
    )
    return write_page(path, html)


def _enrolled_clip(gallery, index: int, sources: AudioSources) -> dict:
    source = gallery.sources[index] if index < len(gallery.sources) else ""
    sound = sources.clip(source) if source and Path(source).is_file() else None
    return {
        "id": f"enrolled-{index}",
        "index": index,
        "label": gallery.labels[index],
        "source": source or f"enrolled clip {index}",
        "name": Path(source).name if source else f"clip {index}",
        "sound": sound,
    }


def _class_summary(classifier, enrolled: dict) -> list[dict]:
    """Per class: its clips, how alike they are (mean cosine between them), the closest other class (cosine
    of the prototypes) and the enrolled clips given players."""
    import torch

    from ..fewshot.calibration import class_statistics

    gallery = classifier.gallery_
    classes, codes = gallery.label_indices()
    stats = class_statistics(gallery.embeddings, codes, len(classes))
    _, prototypes = gallery.prototypes()
    alike = prototypes @ prototypes.T
    alike.fill_diagonal_(-torch.inf)
    out = []
    for c, name in enumerate(classes):
        closest = int(alike[c].argmax()) if len(classes) > 1 else None
        out.append(
            {
                "label": name,
                "clips": int(stats.shots[c]),
                "cohesion": None if stats.cohesion[c] != stats.cohesion[c] else float(stats.cohesion[c]),
                "closest": None if closest is None else classes[closest],
                "closest_similarity": None if closest is None else float(alike[c, closest]),
                "examples": [clip for clip in enrolled.values() if clip["label"] == name],
            }
        )
    return out


def _numeric_columns(rows: Sequence[dict], columns: Sequence[str]) -> set[str]:
    """Columns holding numbers (or nothing) in every row: right-aligned and sorted as numbers."""
    return {
        c
        for c in columns
        if any(r.get(c) is not None for r in rows)
        and all(r.get(c) is None or (isinstance(r[c], (int, float)) and not isinstance(r[c], bool)) for r in rows)
    }


def _options(options: dict) -> list[tuple[str, str]]:
    """The settings worth showing: set ones, by name, as text (models and callables by their kind)."""
    shown = []
    for name, value in options.items():
        if value is None or value is False or callable(value) or name in ("command", "no_progress", "report"):
            continue
        if not isinstance(value, (str, int, float, bool, list, tuple)):
            value = type(value).__name__
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        shown.append((name.replace("_", "-"), str(value)))
    return shown
