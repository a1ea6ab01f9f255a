"""The training loop, as its steps: check the settings, prepare the run (data, model, optimizer, sampler),
start or resume it, then per epoch train, validate and commit, and at the end finish the written model.
:func:`train` reads as that list; each step is a function of its own below it."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .._version import __version__
from ..data import AudioClipDataset, DataSource, PKSampler, make_loader
from ..devices import resolve_device
from ..errors import ParameterError, TrainingDivergedError
from ..evaluation import few_shot_accuracy, verification_metrics
from ..evaluation.embedding import embed_dataset
from ..losses import ContrastiveLoss, TripletLoss
from ..models import EmbeddingModel
from ..paths import make_folder, refuse_folders, refuse_unwritable
from .budget import Budget, finishing_seconds
from .callbacks import DEFAULT_CALLBACKS, EpochCallback
from .config import TrainConfig
from .data import build_datasets, class_weights
from .distillation import Distillation
from .distributed import distributed_setup, gather, shared_value
from .finish import finish_run, weakness
from .model import build_model
from .schedule import lr_factor, warn_short_warmup
from .state import check_same_data, commit_epoch, commit_state, resume_state, run_dir_of, training_data_digest


def train(
    config: TrainConfig,
    sources: Sequence[DataSource],
    *,
    unlabelled: Sequence[DataSource] = (),
    background: Sequence[str] = (),
    progress: bool = True,
    log=print,
    callbacks: Sequence[EpochCallback] = DEFAULT_CALLBACKS,
) -> dict:
    """Train an encoder; returns the final metrics dict. See the package docstring for what is written.

    Under ``torchrun`` every process calls it; rank 0 alone validates, logs and writes files.

    Args:
        config (TrainConfig): the run's settings.
        sources (sequence of DataSource): labelled data (class folders, CSV manifests); class names are
            prefixed by the source name.
        unlabelled (sequence of DataSource, optional): label-free data: every clip is its own class, its
            positives other crops and augmentations of it. Default: ``()``.
        background (sequence of str, optional): folders or manifests of background-noise clips to mix into
            training examples (with ``config.augment``). Default: ``()``.
        progress (bool, optional): progress bars while checking the data and over each epoch's steps.
            Default: ``True``.
        log (callable, optional): called with each message (data summary, one line of metrics per epoch).
            Default: ``print``.
        callbacks (sequence of callable, optional): each called as ``callback(history, run_dir)`` on rank 0
            after every epoch is committed (``history[-1]`` is that epoch's record; ``metrics.csv`` and
            ``metrics.json`` are written by then). Default: ``(plot_curves,)``, the ``curves.png`` plot
            (:func:`~audiosiam.training.plot_curves`); ``()`` for none; add yours to it to keep the plot.

    Returns:
        dict: the last epoch's record (``epoch``, ``step``, ``train_loss``, ``active_fraction``,
        ``elapsed_minutes``, ``lr`` and, with validation, ``val_accuracy``, ``val_ci95``, ``val_eer``,
        ``val_eer_threshold``); ``{}`` when no epoch ran (a resumed run that had finished).

    Raises:
        ParameterError: an invalid setting, too few classes to hold some out for validation, or ``resume``
            without a ``state.pt``.
        TrainingDivergedError: a step's loss or gradient was not finite (nothing of it was applied).
    """
    started = time.time()
    check_settings(config)
    run = prepare(config, sources, unlabelled, background, progress=progress, log=log)
    counters = start_or_resume(run)
    budget = None
    if config.time_budget_minutes is not None:
        finishing = (
            sum(finishing_seconds(run.model, run.val_set, run.train_files, config).values()) if run.is_main else 0.0
        )
        finishing = shared_value(finishing, run.world, run.device)
        budget = Budget(config.time_budget_minutes, finishing, time.time() - started)
        run.say(budget.describe())
    t0 = time.time() - counters.elapsed_before
    for epoch in range(counters.start_epoch, config.epochs):
        if budget is not None and epoch > counters.start_epoch and budget.over(time.time() - t0):
            run.say(f"time budget: training stopped after epoch {epoch} (its validation ended the training time)")
            break
        record, stopped = train_epoch(run, counters, epoch, budget, t0)
        if run.is_main and run.val_set is not None:
            record.update(validate(run.model, run.val_set, config))
        counters.history.append(record)
        if run.is_main:
            commit(run, counters, epoch, elapsed=time.time() - t0)
            for callback in callbacks:
                callback(counters.history, run.run_dir)
        if stopped:
            run.say(f"time budget: training stopped in epoch {epoch + 1}")
            break
    if run.is_main:
        close(run, counters, budget, started)
    if run.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return counters.history[-1] if counters.history else {}


def check_settings(config: TrainConfig) -> None:
    """Refuse what would fail later, before any data is read: the loss, the schedule, an ``out`` that is a
    folder or cannot be written."""
    if config.loss not in ("triplet", "contrastive"):
        raise ParameterError(f"loss={config.loss!r}: expected 'triplet' or 'contrastive'")
    refuse_folders(config.out)  # now, not after the whole run
    refuse_unwritable(run_dir_of(config.out), config.out)
    if config.epochs < 1 or not config.lr > 0 or config.weight_decay < 0:
        raise ParameterError(
            f"epochs={config.epochs}, lr={config.lr}, weight_decay={config.weight_decay}: expected "
            "at least 1 epoch, a positive learning rate and a weight decay >= 0"
        )


@dataclass
class Run:
    """What one training run is made of, built once by :func:`prepare` and read by every step."""

    config: TrainConfig
    sources: Sequence[DataSource]
    unlabelled: Sequence[DataSource]
    background: Sequence[str]
    rank: int
    world: int
    device: torch.device
    say: Callable
    progress: bool
    train_set: AudioClipDataset
    val_set: AudioClipDataset | None
    held: set[str]
    mix_batch: torch.nn.Module | None
    spec_augment: torch.nn.Module | None
    model: EmbeddingModel
    net: torch.nn.Module  # the encoder, wrapped for DDP when there are several processes
    distillation: Distillation
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: PKSampler
    loader: object
    training_data: dict  # the digest a resume checks
    train_files: list[str]  # the training clips' paths (the int8 ranges are measured on them)
    train_classes: list[str]  # the labelled classes only: thousands of label-free clips would each be one
    label_free_clips: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self.config.out)


@dataclass
class Counters:
    """Where a run is: what ``state.pt`` commits and a resume reads back."""

    start_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = float("-inf")
    elapsed_before: float = 0.0  # training seconds of the run's earlier processes (a resume)


def prepare(config: TrainConfig, sources, unlabelled, background, *, progress: bool, log) -> Run:
    """Build the run: processes and device, the data (validation split, augmentation), the model and the
    teacher's terms, the loss, the optimizer and the PK sampler with its loader."""
    rank, world = distributed_setup()
    say = log if rank == 0 else (lambda *a, **k: None)
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.manual_seed(config.seed)
    progress = progress and rank == 0
    train_set, val_set, held, mix_batch, spec_augment = build_datasets(
        config, sources, unlabelled, background, rank=rank, say=say, progress=progress
    )
    model = build_model(config).to(device)
    distillation = Distillation(config, train_set, model, say, progress).to(device)
    net = model.encoder
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model.encoder, device_ids=[device.index] if device.type == "cuda" else None
        )
    criterion = (
        TripletLoss(margin=config.margin, mining=config.mining, metric=config.metric, track_stats=True)
        if config.loss == "triplet"
        else ContrastiveLoss(metric=config.metric, track_stats=True)
    )
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *distillation.parameters()], lr=config.lr, weight_decay=config.weight_decay
    )
    weights = {(s.name or f"source{i}"): s.weight for i, s in enumerate(sources)} | {
        (s.name or "free"): s.weight for s in unlabelled
    }
    sampler = PKSampler(
        train_set.labels,
        config.classes_per_batch,
        config.clips_per_class,
        batches=config.steps_per_epoch,
        seed=config.seed + 1000 * rank,
        class_weights=class_weights(train_set, config.unlabelled_share, config.balance_sources, weights),
    )
    return Run(
        config=config, sources=sources, unlabelled=unlabelled, background=background, rank=rank, world=world,
        device=device, say=say, progress=progress, train_set=train_set, val_set=val_set, held=held,
        mix_batch=mix_batch, spec_augment=spec_augment, model=model, net=net, distillation=distillation,
        criterion=criterion, optimizer=optimizer, sampler=sampler,
        loader=make_loader(train_set, sampler, num_workers=config.num_workers, device=device),
        training_data=training_data_digest(train_set.items),
        train_files=[it.path for it in train_set.items],
        train_classes=sorted({it.label for it in train_set.items if not it.label_free}),
        label_free_clips=len({it.path for it in train_set.items if it.label_free}),
    )  # fmt: skip


def start_or_resume(run: Run) -> Counters:
    """A new run commits its start (so a run killed in its first epoch resumes); ``resume`` reads ``state.pt``
    back into the model, optimizer and projector, refusing other training data or a missing ``best.pt``."""
    config, counters = run.config, Counters()
    if config.resume:
        state = resume_state(run.run_dir, run.model, run.optimizer, run.distillation)
        check_same_data(state, run.training_data, run.run_dir / "state.pt")
        if state["epoch"] >= 0 and not (run.run_dir / "best.pt").is_file():
            raise ParameterError(
                f"resume: {run.run_dir / 'best.pt'} is missing (the best epoch's model, which the run writes to "
                f"{config.out} at its end): copy it with state.pt, or start a new run without --resume"
            )
        counters = Counters(state["epoch"] + 1, state["step"], state["history"], state["best"], state["elapsed"])
        start = counters.start_epoch
        run.say(f"resuming after epoch {start} (step {counters.step})" if start else "resuming from the start")
    if run.is_main:
        make_folder(run.run_dir)
        if not config.resume:
            commit_state(
                run.run_dir, run.model, run.optimizer, epoch=-1, step=0, history=[], best=counters.best, elapsed=0.0,
                distillation=run.distillation.state_dict(), training_data=run.training_data,
            )  # fmt: skip
    return counters


def train_epoch(run: Run, counters: Counters, epoch: int, budget: Budget | None, t0: float) -> tuple[dict, bool]:
    """One epoch of steps. Returns its record (without validation) and whether the time budget ended it."""
    config, model, optimizer, world, rank = run.config, run.model, run.optimizer, run.world, run.rank
    run.train_set.set_epoch(epoch)
    run.sampler.set_epoch(epoch)
    model.train()
    losses, active, distill_losses = [], [], []
    total_steps = config.epochs * len(run.sampler)
    iterator = run.loader
    if run.progress:
        from tqdm.auto import tqdm

        iterator = tqdm(run.loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
    stopped = False
    batches = iter(run.sampler)  # the same batches the loader draws, in its order: named when a step diverges
    for waves, labels in iterator:
        batch = next(batches)
        step = counters.step
        if run.mix_batch is not None:  # before the device copy: the batch's clips mixed on the CPU, seeded per step
            waves = run.mix_batch(waves, labels, torch.Generator().manual_seed(config.seed * 13 + step * world + rank))
        waves, labels = waves.to(run.device, non_blocking=True), labels.to(run.device)
        progress_frac = step / max(1, total_steps)
        if budget is not None:
            progress_frac = max(progress_frac, (time.time() - t0) / budget.training)
            warn_short_warmup(budget, progress_frac, step, config.warmup_steps)
        warmup_share = budget.WARMUP_SHARE if budget is not None else None
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(progress_frac, step, config.warmup_steps, warmup_share)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
            feats = model.frontend(waves)
            if run.spec_augment is not None:
                feats = run.spec_augment(feats, torch.Generator().manual_seed(config.seed * 7 + step * world + rank))
            emb = run.net(feats)
        emb_all, labels_all = gather(emb.float(), labels, world)
        loss = run.criterion(emb_all, labels_all)
        if run.distillation.active:
            distill = run.distillation.loss(emb.float(), feats, batch)
            distill_losses.append(float(distill.detach()))
            loss = loss + distill
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):  # one check, one sync per step
            diverged(epoch, step, loss.detach(), grad_norm, [run.train_set.items[i].path for i in batch], run.run_dir)
        optimizer.step()
        counters.step += 1
        losses.append(float(loss.detach()))
        active.append(run.criterion.last_stats.get("active_fraction", 0.0))
        if hasattr(iterator, "set_postfix"):
            iterator.set_postfix(
                loss=f"{losses[-1]:.3f}", active=f"{active[-1]:.2f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}"
            )
        if budget is not None and budget.over(time.time() - t0):
            stopped = True
            break
    record = {
        "epoch": epoch + 1,
        "step": counters.step,
        "train_loss": sum(losses) / max(1, len(losses)),
        "active_fraction": sum(active) / max(1, len(active)),
        "elapsed_minutes": (time.time() - t0) / 60,
        "lr": optimizer.param_groups[0]["lr"],
    }
    if distill_losses:
        record["distill_loss"] = sum(distill_losses) / len(distill_losses)
    return record, stopped


def commit(run: Run, counters: Counters, epoch: int, *, elapsed: float) -> None:
    """Say the epoch's record, give the model what it was trained on and how it scored, and commit the epoch
    (``last.pt``, ``best.pt`` when it is the best so far, ``state.pt``, then the metrics files)."""
    record = counters.history[-1]
    run.say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    score = record.get("val_accuracy", -record["train_loss"])
    run.model.info = {
        "audiosiam_version": __version__,
        "training_config": asdict(run.config),
        "sources": [asdict(s) for s in run.sources],
        "unlabelled": [asdict(s) for s in run.unlabelled],
        "background": list(run.background),
        "label_set": run.train_classes,
        "label_free_clips": run.label_free_clips,
        "validation_classes": sorted(run.held),
        "metrics": dict(record),
        "training_minutes": record["elapsed_minutes"],
    }
    if "val_eer_threshold" in record:
        run.model.info["verification_threshold"] = record["val_eer_threshold"]
    improved = score > counters.best
    counters.best = max(counters.best, score)
    commit_epoch(
        run.run_dir, run.model, run.optimizer, epoch=epoch, step=counters.step, history=counters.history,
        best=counters.best, improved=improved, elapsed=elapsed,
        extra={"distillation": run.distillation.state_dict(), "training_data": run.training_data},
    )  # fmt: skip


def close(run: Run, counters: Counters, budget: Budget | None, started: float) -> None:
    """Finish the written model (calibration map, int8 ranges; ``out`` written once, complete) and say where
    everything is, and whether the model is weak."""
    config, val_set = run.config, run.val_set
    if budget is not None:
        run.say(
            f"finishing: calibration map and int8 ranges (with the last validation, about "
            f"{budget.finishing:.0f} s of the budget; {(time.time() - started) / 60:.1f} min spent so far)"
        )
    calibrated = finish_run(run.out, run.run_dir, val_set, run.train_files, config, run.say)
    best = counters.best
    # without validation the epochs are ranked by the negated loss: say the loss itself
    kept = f"val accuracy {best:.4f}" if val_set is not None else f"train loss {-best:.4f}"
    took = f" in {(time.time() - started) / 60:.1f} min" if budget is not None else ""
    run.say(f"best model ({kept}) written to {run.out}{took}; curves, metrics and checkpoints in {run.run_dir}")
    n_classes = len(val_set.classes) if val_set is not None else 0
    weak = weakness(best if val_set is not None else None, n_classes, calibrated, config.seed)
    if weak:
        warnings.warn(
            f"this model is weak: {'; '.join(weak)}. Train longer (--time-budget-minutes, --epochs), on more "
            "clips per class, or start from a trained model (--model default)",
            stacklevel=3,
        )


def validate(model: EmbeddingModel, val_set: AudioClipDataset, config: TrainConfig) -> dict:
    """Few-shot accuracy (5-way 1-shot, seeded episodes) and verification EER on the held-out classes."""
    emb, lab = embed_dataset(model, val_set)
    fs = few_shot_accuracy(
        emb,
        lab,
        n_way=min(5, len(val_set.classes)),
        k_shot=1,
        n_query=5,
        episodes=config.val_episodes,
        seed=config.seed,
    )
    ver = verification_metrics(emb, lab)
    return dict(
        val_accuracy=fs["accuracy"], val_ci95=fs["ci95"], val_eer=ver["eer"], val_eer_threshold=ver["eer_threshold"]
    )


def diverged(epoch: int, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, files: list[str], run_dir: Path):
    """Stop a run whose step gave a non-finite loss or gradient, before the optimizer applies it: the
    checkpoints on disk are the last good epoch's."""
    shown = "\n  ".join(files[:8]) + (f"\n  ... and {len(files) - 8} more" if len(files) > 8 else "")
    raise TrainingDivergedError(
        f"epoch {epoch + 1}, step {step + 1}: the {'loss' if not torch.isfinite(loss) else 'gradient'} is not finite "
        f"(loss {float(loss):.4g}, gradient norm {float(grad_norm):.4g}); nothing of this step was applied, and "
        f"{run_dir} holds the last good epoch (resume with --resume, perhaps with a lower --lr). The batch's "
        f"files (check them for corrupt or absurdly loud audio):\n  {shown}"
    )
