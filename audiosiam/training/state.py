"""A run's commits and their resume: ``state.pt`` (the commit), ``last.pt`` / ``best.pt``, the metrics files,
and what a resume checks (a sound state, the same training data)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path

from ..errors import CheckpointError, ParameterError
from ..files import write_output
from ..models import EmbeddingModel, load_checkpoint
from ..models.checkpoint_file import read_trusted, write_checkpoint_file


def commit_epoch(
    run_dir: Path,
    model: EmbeddingModel,
    optimizer,
    *,
    epoch: int,
    step: int,
    history: list[dict],
    best: float,
    improved: bool,
    elapsed: float,
    extra: dict | None = None,
) -> None:
    """Write an epoch's files. ``state.pt`` is the commit: it alone holds everything a resume needs (the
    weights, the optimizer, the epoch, the history), written atomically last, so a kill at any point
    leaves either the previous epoch's state or this one's, never a mix. ``last.pt`` and ``best.pt`` are
    atomic checkpoints for people (a torn copy never replaces a good one); ``metrics.csv`` and ``metrics.json``
    (the history so far) follow the commit."""
    model.save(run_dir / "last.pt")
    if improved:
        model.save(run_dir / "best.pt")
    commit_state(
        run_dir, model, optimizer, epoch=epoch, step=step, history=history, best=best, elapsed=elapsed, **(extra or {})
    )
    write_metrics(history, run_dir)


def commit_state(run_dir: Path, model: EmbeddingModel, optimizer, **counters) -> None:
    """Write ``state.pt``, the commit a resume reads (``epoch`` -1: the run's start, before any step)."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        **counters,
    }
    write_checkpoint_file(run_dir / "state.pt", state)


def training_data_digest(items) -> dict:
    """Which clips a run trains on, by source, class and file name (not the folder: a corpus rebuilt on
    another machine, under another home, is the same corpus), so that a resume on other data is refused."""
    digest = hashlib.sha256()
    for line in sorted(f"{it.source}\t{it.label}\t{Path(it.path).name}" for it in items):
        digest.update(line.encode() + b"\n")
    return {"clips": len(items), "sha256": digest.hexdigest()}


def check_same_data(state: dict, data: dict, state_path: Path) -> None:
    kept = state.get("training_data")
    if kept is None or kept == data:  # states written before the digest existed are not checked
        return
    raise ParameterError(
        f"resume: {state_path} was trained on {kept.get('clips')} clips (digest {str(kept.get('sha256'))[:12]}), "
        f"this run reads {data['clips']} (digest {data['sha256'][:12]}): the training data differ. Rebuild the "
        "corpus with the command the run started from (e.g. scripts/fetch_training_data.py with the same "
        "options) and the same recipe, or start a new run without --resume"
    )


def run_dir_of(out: str | os.PathLike) -> Path:
    """The folder of a run's files: ``<stem>.run`` beside the checkpoint."""
    out = Path(out)
    return out.parent / f"{out.stem}.run"


def resume_state(run_dir: Path, model: EmbeddingModel, optimizer, distillation=None) -> dict:
    """Load a run's ``state.pt`` into ``model``, ``optimizer`` and ``distillation`` (its projector); returns it."""
    state_path = run_dir / "state.pt"
    if not state_path.is_file():
        raise ParameterError(
            f"resume: {state_path} does not exist: nothing of this run was committed (a run commits its start, "
            "then each epoch, there; one stopped while reading its data has none); start it without --resume"
        )
    fix = "it is damaged; start the run again without --resume, or into a new --out"
    state = read_trusted(state_path, "training state", fix)
    problem = state_problem(state)
    if problem is not None:
        raise CheckpointError(f"{state_path}: damaged training state ({problem}); {fix.split('; ', 1)[1]}")
    try:
        # state.pt of older runs held no weights: they came from last.pt, which a kill could leave an epoch ahead
        weights = state["model"] if "model" in state else load_checkpoint(run_dir / "last.pt").state_dict()
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        if distillation is not None:
            distillation.load_state_dict(state.get("distillation", {}))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{state_path}: does not fit this run's model and settings ({detail}); resume with the options the run "
            f"was started with (architecture, --embedding-dim, --n-mels), or {fix.split('; ', 1)[1]}"
        ) from None
    return state


def state_problem(state) -> str | None:
    """What is wrong with the counters of a ``state.pt`` (``None``: nothing): an epoch from -1 (the run's
    start) up, one history record per epoch, a step count, a best score that is a number (``-inf`` before
    the first epoch) and the seconds spent."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a table"
    epoch, step, history = state.get("epoch"), state.get("step"), state.get("history")
    best, elapsed = state.get("best"), state.get("elapsed", 0.0)

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if type(epoch) is not int or epoch < -1:
        return f"epoch={epoch!r}: expected a whole number from -1"
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        return f"history={type(history).__name__}: expected a list of per-epoch records"
    if len(history) != epoch + 1:
        return f"epoch={epoch!r} but {len(history)} history records: expected one per epoch"
    if type(step) is not int or step < 0:
        return f"step={step!r}: expected a whole number from 0"
    if not number(best) or math.isnan(best) or best == math.inf:
        return f"best={best!r}: expected a score"
    if not number(elapsed) or not 0 <= elapsed < math.inf:
        return f"elapsed={elapsed!r}: expected seconds"
    return None


def write_metrics(history: list[dict], run_dir: Path) -> None:
    """The run's history as ``metrics.csv`` (one row per epoch) and ``metrics.json``, each written atomically."""
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    write_output(run_dir / "metrics.csv", write_csv)
    write_output(run_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(history, indent=2)))
