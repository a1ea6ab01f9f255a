"""Pictures for people: where clips sit in embedding space, and why a query got its label.

Embeddings are projected to 2-D with PCA (deterministic, and distances along the axes keep their
meaning), which is enough to see whether classes form separate clouds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["plot_embeddings", "plot_gallery_and_queries", "plot_reliability", "plot_detection"]


def project_2d(embeddings: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of (N, D) embeddings to (N, 2).

    Args:
        embeddings (Tensor or np.ndarray): (N, D) embeddings (CPU), computed on in float64. With fewer than
            two rows there is no spread to analyse: the first two axes are used as the components.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``(points, mean, components)``, shapes (N, 2), (D,) and
        (2, D), so other points can be projected as ``(x - mean) @ components.T``.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    mean = x.mean(axis=0)
    centered = x - mean
    if len(x) < 2:
        components = np.eye(2, x.shape[1])
    else:
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        components = np.zeros((2, x.shape[1]))
        components[: min(2, len(vt))] = vt[:2]
    return centered @ components.T, mean, components


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(names: Sequence[str]):
    plt = _figure()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(names))}


def plot_embeddings(embeddings, labels: Sequence[str], path: str | os.PathLike, *, title: str = "") -> Path:
    """Scatter (N, D) embeddings in 2-D, one colour per label, and save a PNG.

    The 2-D points are ``project_2d()`` of ``embeddings``; a legend is drawn for up to 20 labels.

    Args:
        embeddings (Tensor or np.ndarray): (N, D) embeddings (CPU).
        labels (Sequence[str]): N labels, one per row of ``embeddings`` (converted with ``str``).
        path (str or os.PathLike): where to write the picture (missing folders are created); the format
            follows the extension, so give it ``.png``.
        title (str, optional): the figure's title; empty for one counting the embeddings and classes.
            Default: ``""``.

    Returns:
        Path: ``path``.
    """
    plt = _figure()
    points, _, _ = project_2d(embeddings)
    labels = [str(label) for label in labels]
    colours = _colours(set(labels))
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    for name in sorted(set(labels)):
        mask = np.array([label == name for label in labels])
        ax.scatter(points[mask, 0], points[mask, 1], s=14, alpha=0.75, color=colours[name], label=name)
    if len(colours) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_title(title or f"{len(labels)} embeddings, {len(colours)} classes (PCA)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    return save_figure(plt, fig, path)


def picture_format(path: str | os.PathLike) -> str:
    """The picture format of ``path`` by its extension (``"png"`` when it has none), checked before any
    work is done: a commands calls it first, so a typo does not cost a whole run.

    Args:
        path (str or os.PathLike): where the picture will go.

    Returns:
        str: a format matplotlib writes, e.g. ``"png"``, ``"pdf"``, ``"svg"``.

    Raises:
        ParameterError: matplotlib cannot write that format, or ``path`` is a folder.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    from .errors import ParameterError
    from .paths import refuse_folders

    refuse_folders(path)
    kind = Path(path).suffix.lstrip(".").lower() or "png"
    if kind not in FigureCanvasBase.get_supported_filetypes():
        raise ParameterError(f"{path}: pictures can be written as .png, .pdf or .svg, not .{kind}")
    return kind


def save_figure(plt, fig, path) -> Path:
    """Lay out, write atomically (creating the folder) and close a figure; the format follows the file's
    extension (``.png`` when it has none). A folder or an unwritable place is a ``ParameterError``."""
    from .files import write_output

    fig.tight_layout()
    try:
        kind = picture_format(path)
        return write_output(path, lambda tmp: fig.savefig(tmp, format=kind))
    finally:
        plt.close(fig)


KEY_ROWS = 36  # queries per column of the numbered key
KEY_COLUMNS = 4  # columns of the key at most; further queries are numbered on the map, counted in the key


def _short(name: str, width: int = 34) -> str:
    return name if len(name) <= width else name[: width - 13] + "..." + name[-10:]


def plot_gallery_and_queries(
    clf, query_embeddings, query_names: Sequence[str], predicted: Sequence[str], path: str | os.PathLike
) -> Path:
    """Examples (dots), class prototypes (large circles, named) and queries (stars, numbered) in one 2-D picture.

    A query drawn near a class's cloud and prototype got that label; one far from every cloud is the kind
    that ends up "unknown". The projection is the PCA (``project_2d()``) of the gallery's examples and
    the queries together, so both shape the axes. Only what stays readable is written on the map: the
    class names at their prototypes and a number at each query; a key beside the map gives each number's
    file and answer (up to ``KEY_ROWS * KEY_COLUMNS`` queries; the rest are counted).

    Args:
        clf (FewShotClassifier): a fitted classifier; its ``gallery_`` gives the examples, labels and
            prototypes drawn.
        query_embeddings (Tensor or np.ndarray): (Q, D) embeddings of the queries, from the same model as
            the gallery (CPU).
        query_names (Sequence[str]): Q names listed in the key; only the last path component is shown.
        predicted (Sequence[str]): Q predicted labels; a star takes its class's colour, black for a label
            that is not a gallery class (e.g. "unknown").
        path (str or os.PathLike): where to write the picture (missing folders are created); the format
            follows the extension, e.g. ``.png``.

    Returns:
        Path: ``path``.
    """
    import matplotlib.patheffects as effects

    plt = _figure()
    gallery = clf.gallery_
    classes, prototypes = gallery.prototypes()
    everything = np.concatenate([gallery.embeddings.numpy(), np.asarray(query_embeddings)])
    _, mean, components = project_2d(everything)
    project = lambda x: (np.asarray(x, dtype=np.float64) - mean) @ components.T  # noqa: E731
    support_2d, proto_2d, query_2d = project(gallery.embeddings), project(prototypes), project(query_embeddings)
    colours = _colours(classes)
    n = len(query_names)
    columns = min(KEY_COLUMNS, max(1, -(-n // KEY_ROWS)))
    fig, (ax, key) = plt.subplots(
        1, 2, figsize=(7.5 + 3.1 * columns, 6.5), dpi=120, gridspec_kw={"width_ratios": [7.5, 3.1 * columns]}
    )
    labels = np.asarray(gallery.labels)
    outline = [effects.withStroke(linewidth=2.5, foreground="white")]
    for i, name in enumerate(classes):
        mask = labels == name
        ax.scatter(support_2d[mask, 0], support_2d[mask, 1], s=30, color=colours[name], alpha=0.6)
        ax.scatter(proto_2d[i, 0], proto_2d[i, 1], s=260, facecolors="none", edgecolors=colours[name], linewidths=2.2)
    for number, ((x, y), label) in enumerate(zip(query_2d, predicted), 1):
        ax.scatter([x], [y], marker="*", s=160, color=colours.get(label, "black"), edgecolors="black", linewidths=0.5)
        ax.annotate(str(number), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=6.5, path_effects=outline)
    for i, name in enumerate(classes):  # last, so the class names stay on top
        ax.annotate(_short(name, 24), proto_2d[i], xytext=(0, 11), textcoords="offset points", ha="center",
                    fontsize=8.5, fontweight="bold", color=colours[name], path_effects=outline)  # fmt: skip
    ax.set_title("Examples (dots), class prototypes (circles) and queries (stars), PCA of embeddings", fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    key.axis("off")
    key.set_xlim(0, columns)
    key.set_ylim(KEY_ROWS + 1, 0)
    key.text(0, 0, "queries (number: file -> answer)", fontsize=8, fontweight="bold", va="center")
    shown = min(n, KEY_ROWS * KEY_COLUMNS)
    rows = max(1, -(-shown // columns))  # the columns filled evenly
    for q in range(shown):
        column, row = divmod(q, rows)
        text = f"{q + 1}: {_short(Path(query_names[q]).name, 30)} -> {_short(str(predicted[q]), 16)}"
        key.text(column, row + 1, text, fontsize=6.5, va="center", color=colours.get(predicted[q], "black"))
    if shown < n:
        key.text(columns - 1, KEY_ROWS + 0.9, f"... and {n - shown} more", fontsize=6.5, va="center")
    return save_figure(plt, fig, path)


def plot_reliability(results: dict, path: str | os.PathLike, *, title: str = "") -> Path:
    """Reliability diagrams of :func:`audiosiam.evaluation.calibration_metrics` results: accuracy against
    the probability given, closed set (left) and open set (right), one line per result.

    A calibrated classifier lies on the diagonal; below it, it claims more than it delivers. Marker areas
    follow the number of answers in each bin.

    Args:
        results (dict): name (e.g. ``"calibration 1-shot"``) -> a ``calibration_metrics`` dict.
        path (str or os.PathLike): the picture; its extension picks the format.
        title (str, optional): the figure's title. Default: ``""``.

    Returns:
        Path: ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=110, sharey=True)
    for ax, side, name in ((axes[0], "closed", "enrolled classes only"), (axes[1], "open", "with unknown classes")):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
        for label, r in results.items():
            table = np.asarray(r[f"{side}_reliability"], dtype=float).reshape(-1, 3)
            if len(table):
                size = 12 + 200 * table[:, 2] / table[:, 2].max()
                line = ax.plot(table[:, 0], table[:, 1], marker="", label=f"{label} (ECE {r[f'{side}_ece']:.3f})")
                ax.scatter(table[:, 0], table[:, 1], s=size, color=line[0].get_color(), alpha=0.6)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("probability given to the answer")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("share of answers that were right")
    if title:
        fig.suptitle(title)
    return save_figure(plt, fig, path)


def overview_spectrogram(
    recording, sample_rate: int = 16000, *, columns: int = 2000, n_mels: int = 64
) -> tuple[np.ndarray, float]:
    """A log-mel spectrogram of a whole recording at most ``columns`` wide, read in blocks (any length).

    Args:
        recording (str, Path or Tensor): a file (streamed) or a (time,) waveform at ``sample_rate``.
        sample_rate (int, optional): the rate it is analysed at. Default: ``16000``.
        columns (int, optional): at most this many time columns; 10 ms frames are averaged in power to fit.
            Default: ``2000``.
        n_mels (int, optional): mel bands. Default: ``64``.

    Returns:
        tuple[np.ndarray, float]: the (n_mels, cols) spectrogram in dB and the seconds per column.
    """
    from .functional import log_mel_spectrogram
    from .io import audio_duration, read_blocks

    if isinstance(recording, (str, os.PathLike)):
        seconds, blocks = audio_duration(recording), read_blocks(recording, sample_rate)
    else:
        wave = torch.as_tensor(recording, dtype=torch.float32)
        seconds, blocks = wave.numel() / sample_rate, [wave]
    per_column = max(1, int(np.ceil(seconds * 100 / columns)))  # 10 ms frames per column
    hop, parts, rest = sample_rate // 100, [], torch.empty(n_mels, 0, dtype=torch.float64)
    for block in blocks:
        frames = block.numel() // hop
        if frames == 0:
            continue
        power = 10 ** (log_mel_spectrogram(block[: frames * hop], sample_rate, n_mels=n_mels, top_db=None) / 10)
        rest = torch.cat([rest, power[:, :frames].double()], dim=1)
        whole = rest.shape[1] // per_column * per_column
        parts.append(rest[:, :whole].reshape(n_mels, -1, per_column).mean(2))
        rest = rest[:, whole:]
    if rest.shape[1]:
        parts.append(rest.mean(1, keepdim=True))
    power = torch.cat(parts, dim=1) if parts else torch.zeros(n_mels, 1, dtype=torch.float64)
    db = 10 * torch.log10(power.clamp_min(1e-10))
    return db.clamp_min(db.max() - 80).numpy(), per_column / 100


def plot_detection(curve, events, path: str | os.PathLike, *, recording=None) -> Path:
    """Why something was or was not found: the recording's spectrogram above each label's score over time,
    with its threshold and the detected events shaded on both.

    Args:
        curve (ScoreCurve): the scores and thresholds (:meth:`audiosiam.EventDetector.score`).
        events (Sequence[Event]): the events found in it.
        path (str or os.PathLike): the picture to write (format by extension).
        recording (str, Path, Tensor or None, optional): the recording, for the spectrogram (read again, in
            blocks); ``None``: scores only. Default: ``None``.

    Returns:
        Path: ``path``.
    """
    plt = _figure()
    rows = 2 if recording is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.4 * rows + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    colours = _colours(curve.labels)
    if recording is not None:
        db, step = overview_spectrogram(recording)
        axes[0].imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, db.shape[1] * step, 0, db.shape[0]))
        axes[0].set_ylabel("mel band")
        axes[0].set_title(f"{curve.file}: {len(events)} event{'s' * (len(events) != 1)} found")
    ax = axes[-1]
    for c, label in enumerate(curve.labels):
        ax.plot(curve.centres, curve.scores[:, c], lw=0.8, color=colours[label], label=f"{label} (similarity)")
        ax.axhline(curve.thresholds[c], ls="--", lw=0.8, color=colours[label])
    for e in events:
        for a in axes:
            a.axvspan(e.start, e.end, color=colours[e.label], alpha=0.25 if a is ax else 0.35, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cosine similarity")
    ax.set_xlim(0, max(curve.duration, 1e-3))
    # beside the data, not on it: events are where the curves peak, wherever that is
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, borderaxespad=0.0,
              title="dashed: threshold\nshaded: events", title_fontsize=8)  # fmt: skip
    return save_figure(plt, fig, path)
