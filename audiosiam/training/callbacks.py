"""What a run does after each committed epoch besides committing it: callbacks ``callback(history, run_dir)``
on rank 0 (``history[-1]`` is the epoch just committed). The default draws the curves; a user's callback
can log elsewhere (a dashboard, a message) without touching the loop."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..plotting import save_figure

#: A function called after each committed epoch with the run's history and its folder.
EpochCallback = Callable[[list[dict], Path], None]


def plot_curves(history: list[dict], run_dir: Path) -> None:
    """Draw ``curves.png`` in ``run_dir``: training loss, held-out 5-way 1-shot accuracy and EER per epoch.

    Args:
        history (list of dict): the epochs' records so far.
        run_dir (Path): the run's folder.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110)
    axes[0].plot(epochs, [h["train_loss"] for h in history], marker="o")
    axes[0].set_title("training loss")
    axes[1].plot(epochs, [h.get("val_accuracy", float("nan")) for h in history], marker="o", color="tab:green")
    axes[1].set_title("held-out 5-way 1-shot accuracy")
    axes[2].plot(epochs, [h.get("val_eer", float("nan")) for h in history], marker="o", color="tab:red")
    axes[2].set_title("held-out EER")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    save_figure(plt, fig, run_dir / "curves.png")


#: What :func:`~audiosiam.training.train` calls after each epoch unless told otherwise: the curves plot.
DEFAULT_CALLBACKS: tuple[EpochCallback, ...] = (plot_curves,)
