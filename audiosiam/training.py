"""Siamese training: PK batches through the shared encoder, triplet or contrastive loss, few-shot validation.

One function, :func:`train`, serves the command line (``audiosiam train``), scripts, and ``torchrun``:

    torchrun --nproc_per_node=2 -m audiosiam train data/ --out model.pt    # DDP: gloo on CPU, NCCL on GPU

* Data: sources (class folders, CSV manifests, or a JSON recipe naming several), combined with class
  names prefixed by the source name. A class-disjoint set of classes is held out for validation.
  ``unlabelled`` sources train label-free: every clip is its own class, and its positives are other
  random crops and augmentations of the same clip.
* Each step: a PK batch (P classes x K clips) of random ``clip_seconds`` crops with waveform
  augmentation (gain, noise, background mixing, time shift), log-mel, SpecAugment, encoder, loss.
  Under DDP the embeddings of all ranks are gathered (differentiably) before mining.
* Schedule: AdamW, linear warm-up, cosine decay over the run. With a time budget the decay follows
  elapsed time instead of steps (then the run is not bit-reproducible; with ``epochs`` it is, on CPU).
* Each epoch: few-shot accuracy (5-way 1-shot, seeded episodes) and EER on the held-out classes;
  ``best.pt`` (by accuracy) and ``last.pt`` checkpoints; ``state.pt`` (optimizer, schedule, epoch,
  history) so ``resume=True`` continues with nothing lost; ``metrics.csv``, ``metrics.json`` and a
  ``curves.png`` plot. At the end the best checkpoint is written to ``out``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ._version import __version__
from .data import AudioClipDataset, ClipItem, PKSampler, folder_items, make_loader, manifest_columns, manifest_items
from .errors import NoAudioFilesError, ParameterError
from .evaluation import embed_dataset, few_shot_accuracy, verification_metrics
from .io import find_audio_files, load_audio
from .losses import ContrastiveLoss, TripletLoss
from .models import EmbeddingModel, EncoderConfig, ResNetEncoder, load_checkpoint
from .transforms import (AddNoise, BandLimit, Compose, LogMelSpectrogram, MixBackground, MixBatch, RandomEqualizer,
                         RandomGain, Reverb, SpecAugment, SpeedPerturb, TimeShift)

__all__ = ["TrainConfig", "DataSource", "train", "load_sources"]


@dataclass
class DataSource:
    """One data source: a class folder or a CSV manifest (``label_columns`` joined with "|")."""

    path: str
    name: str = ""
    label_columns: list[str] = field(default_factory=lambda: ["label"])
    where: dict[str, list[str]] | None = None
    group_column: str | None = None
    exclude: dict[str, list[str]] | None = None  # rows to drop, e.g. {"speaker": ["theo"]}
    weight: float = 1.0  # this source's relative share of the drawn classes (with balance_sources)

    def items(self) -> list[ClipItem]:
        path = Path(self.path)
        if path.is_dir():
            return folder_items(path)
        return manifest_items(path, label_column=self.label_columns, where=self.where, exclude=self.exclude,
                              group_column=self.group_column)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in checkpoints)."""

    out: str = "model.pt"
    epochs: int = 20
    steps_per_epoch: int | None = None
    time_budget_minutes: float | None = None
    p: int = 32
    k: int = 4
    clip_seconds: float = 1.0
    loss: str = "triplet"
    mining: str = "batch_hard"
    margin: float = 0.2
    distance: str = "euclidean"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    embedding_dim: int = 192
    n_mels: int = 64
    normalize: str = "utterance"  # log-mel normalisation: "utterance" or "band" (see audiosiam.functional)
    channels: list[int] = field(default_factory=lambda: [32, 48, 96, 160])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    augment: bool = True
    speed_perturb: float = 0.0  # with augment: half the clips played at 1 +/- up to this speed (e.g. 0.15); 0: off
    reverb: float = 0.0  # with augment: probability of a synthetic room response per clip; 0: off
    equalizer: float = 0.0  # with augment: probability of a random +/-9 dB smooth equaliser per clip; 0: off
    mix_batch: float = 0.0  # with augment: probability of mixing in a clip of another class (5-20 dB SNR); 0: off
    val_classes: int | None = None
    val_episodes: int = 300
    unlabelled_share: float = 0.3  # fraction of each batch's classes drawn from label-free clips
    balance_sources: bool = True  # each labelled source gets an equal share of the drawn classes
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    resume: bool = False
    init: str | None = None  # start from this checkpoint's weights (fine-tuning)


def load_sources(paths: Sequence[str], *, label_columns: Sequence[str] = ("label",),
                 where: dict[str, list[str]] | None = None, group_column: str | None = None,
                 exclude: dict[str, list[str]] | None = None):
    """``(labelled, unlabelled, background)`` source lists from command-line DATA arguments.

    A folder or ``.csv`` becomes one labelled source with the given options; a ``.json`` recipe lists
    ``{"sources": [{path, name, label_columns, where, exclude, group_column, weight}], "unlabelled": [...],
    "background": [...]}`` (relative paths are relative to the recipe). ``exclude`` (e.g.
    ``{"speaker": ["theo"]}``, to hold a speaker out) is added to every labelled and unlabelled manifest
    source that has the column; at least one must.
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
                labelled.append(DataSource(resolve(s["path"]), s.get("name", ""), list(s.get("label_columns", ["label"])),
                                           s.get("where"), s.get("group_column"), s.get("exclude"),
                                           float(s.get("weight", 1.0))))
            for s in recipe.get("unlabelled", []):
                s = {"path": s} if isinstance(s, str) else s
                unlabelled.append(DataSource(resolve(s["path"]), s.get("name", ""), list(s.get("label_columns", [])),
                                             s.get("where"), exclude=s.get("exclude"),
                                             weight=float(s.get("weight", 1.0))))
            background += [resolve(p) for p in recipe.get("background", [])]
        elif path.is_dir() or path.suffix == ".csv":
            labelled.append(DataSource(str(path), path.stem if path.suffix else path.name, list(label_columns), where,
                                       group_column))
        else:
            raise ParameterError(f"{path}: expected a folder of class subfolders, a .csv manifest or a .json recipe")
    manifests = [(s, manifest_columns(s.path)) for s in labelled + unlabelled if exclude and not Path(s.path).is_dir()]
    for column, values in (exclude or {}).items():
        having = [s for s, header in manifests if column in header]
        if not having:
            raise ParameterError(f"exclude {column}={','.join(values)}: no manifest among "
                                 f"{[s.path for s, _ in manifests]} has a {column!r} column")
        for s in having:
            s.exclude = {**(s.exclude or {}), column: [*(s.exclude or {}).get(column, []), *values]}
    return labelled, unlabelled, background


def _unlabelled_items(source: DataSource, copies: int) -> list[ClipItem]:
    """Each clip is its own class; ``copies`` entries of it let a PK batch draw K views of it."""
    path = Path(source.path)
    if path.is_dir():
        files = [str(p) for p in find_audio_files(path)]
    else:
        files = [it.path for it in manifest_items(path, label_column=source.label_columns or ["path"], where=source.where,
                                                  exclude=source.exclude)]
    return [ClipItem(f, f"clip:{f}", "") for f in files for _ in range(copies)]


def _load_background(paths: Sequence[str], sample_rate: int) -> list[torch.Tensor]:
    clips = []
    for p in paths:
        path = Path(p)
        files = find_audio_files(path) if path.is_dir() else [it.path for it in manifest_items(path, label_column=["path"])]
        clips += [load_audio(f, sample_rate) for f in files]
    return clips


def _split_classes(dataset: AudioClipDataset, n_val: int | None, seed: int, min_clips: int = 6):
    counts = dataset.class_counts()
    eligible = sorted(c for c, n in counts.items() if n >= min_clips and not c.startswith("unlabelled/"))
    if n_val is None:
        n_val = min(50, max(5, len(eligible) // 10))
    if n_val and len(eligible) - n_val < 2:
        raise ParameterError(f"only {len(eligible)} classes have {min_clips}+ clips: too few to hold {n_val} out for "
                             "validation and still train; pass val_classes=0 or add data")
    g = torch.Generator().manual_seed(seed)
    held = {eligible[i] for i in torch.randperm(len(eligible), generator=g)[:n_val].tolist()}
    return held


def _class_weights(dataset: AudioClipDataset, unlabelled_share: float, balance_sources: bool,
                   source_weights: dict[str, float] | None = None) -> dict[int, float] | None:
    """Class-drawing weights for the PK sampler.

    Label-free clips share ``unlabelled_share`` of the draws, labelled classes the rest. With
    ``balance_sources`` each source (the prefix before the first "/" of a labelled class name; the part
    after ``unlabelled/`` for label-free ones) gets a share in proportion to its weight in
    ``source_weights`` (default 1), split equally among its classes, so a source with 8 words counts as
    much as one with 100 drum sounds; otherwise every class of a kind is equal.
    """
    weight_of = source_weights or {}
    free = [i for i, c in enumerate(dataset.classes) if c.startswith("unlabelled/")]
    labelled = [i for i, c in enumerate(dataset.classes) if not c.startswith("unlabelled/")]
    if not labelled:
        return None
    weights = {}
    for members, share, source_of in (
            (labelled, (1.0 - unlabelled_share) if free else 1.0, lambda c: c.split("/", 1)[0]),
            (free, unlabelled_share, lambda c: c.split("/")[1] if c.count("/") >= 2 else "")):
        by_source: dict[str, list[int]] = {}
        for i in members:
            by_source.setdefault(source_of(dataset.classes[i]) if balance_sources else "", []).append(i)
        total = sum(float(weight_of.get(name, 1.0)) for name in by_source)
        for name, group in by_source.items():
            weights.update({i: share * float(weight_of.get(name, 1.0)) / (total * len(group)) for i in group})
    return weights


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    warm = min(1.0, (step + 1) / max(1, warmup))
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _plot_curves(history: list[dict], path: Path) -> None:
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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _write_metrics(history: list[dict], run_dir: Path) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=2))
    _plot_curves(history, run_dir / "curves.png")


def _distributed_setup():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _gather(embeddings: torch.Tensor, labels: torch.Tensor, world: int):
    if world == 1:
        return embeddings, labels
    import torch.distributed as dist
    import torch.distributed.nn.functional as dnn

    all_emb = torch.cat(dnn.all_gather(embeddings))
    all_labels = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(all_labels, labels)
    return all_emb, torch.cat(all_labels)


def train(config: TrainConfig, sources: Sequence[DataSource], *, unlabelled: Sequence[DataSource] = (),
          background: Sequence[str] = (), progress: bool = True, log=print) -> dict:
    """Train an encoder; returns the final metrics dict. See the module docstring for what is written."""
    rank, world = _distributed_setup()
    is_main = rank == 0
    say = log if is_main else (lambda *a, **k: None)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.manual_seed(config.seed)
    if config.loss not in ("triplet", "contrastive"):
        raise ParameterError(f"loss={config.loss!r}: expected 'triplet' or 'contrastive'")

    # ------------------------------------------------------------------ data
    items: list[ClipItem] = []
    for i, source in enumerate(sources):
        name = source.name or f"source{i}"
        items += [ClipItem(it.path, f"{name}/{it.label}", it.group) for it in source.items()]
    for source in unlabelled:
        name = source.name or "free"
        items += [ClipItem(it.path, f"unlabelled/{name}/{it.label}", "") for it in _unlabelled_items(source, config.k)]
    if not items:
        raise NoAudioFilesError("no training clips: give at least one data source")
    sample_rate = 16000
    bg = _load_background(background, sample_rate) if background else []
    augment = None
    if config.augment:
        parts = [RandomGain((-10.0, 6.0), p=0.8), AddNoise((10.0, 40.0), p=0.3), TimeShift(0.1, p=0.3),
                 BandLimit(sample_rate, (3000.0, 7000.0), p=0.3)]
        if bg:
            parts.insert(1, MixBackground(bg, (3.0, 25.0), p=0.4))
        if config.speed_perturb > 0:  # first: the voice changes before the room and the channel do
            parts.insert(0, SpeedPerturb((1 - config.speed_perturb, 1 + config.speed_perturb), p=0.5))
        if config.reverb > 0:  # the room, after the source and before the channel (equaliser, band limit)
            parts.insert(1 if config.speed_perturb > 0 else 0, Reverb(p=config.reverb, sample_rate=sample_rate))
        if config.equalizer > 0:
            parts.insert(len(parts) - 1, RandomEqualizer(p=config.equalizer, sample_rate=sample_rate))
        augment = Compose(parts)
    mix_batch = MixBatch(p=config.mix_batch) if config.augment and config.mix_batch > 0 else None
    full = AudioClipDataset(items, sample_rate=sample_rate, clip_seconds=config.clip_seconds, crop="random",
                            augment=augment, seed=config.seed + 7919 * rank, on_error="skip")
    say(full.summary())
    held = _split_classes(full, config.val_classes, config.seed)
    train_set = full.subset(lambda it: it.label not in held)
    val_set = full.subset(lambda it: it.label in held) if held else None
    if val_set is not None:
        val_set.augment, val_set.clip_seconds = None, None
    say(f"training on {len(train_set)} clips of {len(train_set.classes)} classes; "
        f"validating on {len(val_set) if val_set else 0} clips of {len(held)} held-out classes")
    train_set.validate(progress=progress and is_main)
    if val_set is not None:
        val_set.validate()

    # ------------------------------------------------------------------ model
    frontend = LogMelSpectrogram(sample_rate, n_mels=config.n_mels, normalize=config.normalize)
    encoder = ResNetEncoder(EncoderConfig(n_mels=config.n_mels, channels=tuple(config.channels),
                                          blocks=tuple(config.blocks), embedding_dim=config.embedding_dim))
    model = EmbeddingModel(frontend, encoder)
    if config.init:
        model.load_state_dict(load_checkpoint(config.init).state_dict())
    model.to(device)
    net = model.encoder
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model.encoder, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = (TripletLoss(margin=config.margin, mining=config.mining, distance=config.distance)
                 if config.loss == "triplet" else ContrastiveLoss(distance=config.distance))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    spec_augment = SpecAugment(time_masks=2, time_width=12, freq_masks=2, freq_width=8, p=0.8) if config.augment else None
    sampler = PKSampler(train_set.labels, config.p, config.k, batches=config.steps_per_epoch,
                        seed=config.seed + 1000 * rank, class_weights=_class_weights(
                            train_set, config.unlabelled_share, config.balance_sources,
                            {(s.name or f"source{i}"): s.weight for i, s in enumerate(sources)}
                            | {(s.name or "free"): s.weight for s in unlabelled}))
    loader = make_loader(train_set, sampler, num_workers=config.num_workers, device=device)
    total_steps = config.epochs * len(sampler)
    use_amp = device.type == "cuda"

    out = Path(config.out)
    run_dir = out.parent / f"{out.stem}.run"
    start_epoch, step, history, best, elapsed_before = 0, 0, [], float("-inf"), 0.0
    state_path = run_dir / "state.pt"
    if config.resume:
        if not state_path.is_file():
            raise ParameterError(f"resume: {state_path} does not exist; start without resume")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(load_checkpoint(run_dir / "last.pt").state_dict())
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, history, best = state["epoch"] + 1, state["step"], state["history"], state["best"]
        elapsed_before = state["elapsed"]
        say(f"resuming after epoch {state['epoch']} (step {step})")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    budget = None if config.time_budget_minutes is None else 60.0 * config.time_budget_minutes
    t0 = time.time() - elapsed_before
    train_classes = list(train_set.classes)

    for epoch in range(start_epoch, config.epochs):
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        losses, active = [], []
        iterator = loader
        if progress and is_main:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
        stop = False
        for waves, labels in iterator:
            if mix_batch is not None:  # before the device copy: the batch's clips mixed on the CPU, seeded per step
                waves = mix_batch(waves, labels, torch.Generator().manual_seed(config.seed * 13 + step * world + rank))
            waves, labels = waves.to(device, non_blocking=True), labels.to(device)
            progress_frac = step / max(1, total_steps)
            if budget is not None:
                progress_frac = max(progress_frac, (time.time() - t0) / budget)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(progress_frac, step, config.warmup_steps)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                feats = model.frontend(waves)
                if spec_augment is not None:
                    feats = spec_augment(feats, torch.Generator().manual_seed(config.seed * 7 + step * world + rank))
                emb = net(feats)
            emb_all, labels_all = _gather(emb.float(), labels, world)
            loss = criterion(emb_all, labels_all)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            active.append(criterion.last_stats.get("active_fraction", 0.0))
            if progress and is_main and hasattr(iterator, "set_postfix"):
                iterator.set_postfix(loss=f"{losses[-1]:.3f}", active=f"{active[-1]:.2f}",
                                     lr=f"{optimizer.param_groups[0]['lr']:.1e}")
            if budget is not None and time.time() - t0 > budget:
                stop = True
                break
        record = {"epoch": epoch + 1, "step": step, "train_loss": sum(losses) / max(1, len(losses)),
                  "active_fraction": sum(active) / max(1, len(active)), "elapsed_minutes": (time.time() - t0) / 60,
                  "lr": optimizer.param_groups[0]["lr"]}
        if is_main and val_set is not None:
            emb, lab = embed_dataset(model, val_set)
            n_way = min(5, len(val_set.classes))
            fs = few_shot_accuracy(emb, lab, n_way=n_way, k_shot=1, n_query=5, episodes=config.val_episodes,
                                   seed=config.seed)
            ver = verification_metrics(emb, lab)
            record.update(val_accuracy=fs["accuracy"], val_ci95=fs["ci95"], val_eer=ver["eer"],
                          val_eer_threshold=ver["eer_threshold"])
        history.append(record)
        if is_main:
            say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            score = record.get("val_accuracy", -record["train_loss"])
            info = {"audiosiam_version": __version__, "training_config": asdict(config),
                    "sources": [asdict(s) for s in sources], "unlabelled": [asdict(s) for s in unlabelled],
                    "background": list(background), "label_set": train_classes, "validation_classes": sorted(held),
                    "metrics": dict(record), "training_minutes": record["elapsed_minutes"]}
            if "val_eer_threshold" in record:
                info["verification_threshold"] = record["val_eer_threshold"]
            model.info = info
            model.save(run_dir / "last.pt")
            if score > best:
                best = score
                shutil.copyfile(run_dir / "last.pt", run_dir / "best.pt")
            torch.save({"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step, "history": history,
                        "best": best, "elapsed": time.time() - t0}, state_path.with_suffix(".tmp"))
            os.replace(state_path.with_suffix(".tmp"), state_path)
            _write_metrics(history, run_dir)
        if stop:
            say(f"time budget of {config.time_budget_minutes} minutes reached after epoch {epoch + 1}")
            break
    if is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        shutil.copyfile(run_dir / "best.pt", tmp)
        os.replace(tmp, out)
        say(f"best model ({'val accuracy' if val_set is not None else 'train loss'} {best:.4f}) written to {out}; "
            f"curves, metrics and checkpoints in {run_dir}")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return history[-1] if history else {}
