"""Siamese training: PK batches through the shared encoder, triplet or contrastive loss, few-shot validation.

One function, :func:`train`, serves the command line (``audiosiam train``), scripts, and ``torchrun``:

    torchrun --nproc_per_node=2 -m audiosiam train data/ --out model.pt    # DDP: gloo on CPU, NCCL on GPU

* Data: sources (class folders, CSV manifests, or a JSON recipe naming several), combined with class
  names prefixed by the source name. A class-disjoint set of classes is held out for validation, and
  their files with them wherever another source lists them under another class.
  ``unlabelled`` sources train label-free: every clip is its own class, and its positives are other
  random crops and augmentations of the same clip.
* Each step: a PK batch (P classes x K clips) of random ``clip_seconds`` crops with waveform
  augmentation (gain, noise, background mixing, time shift, band limiting; optionally speed, reverb,
  equaliser and mixing with another class's clip), log-mel, SpecAugment, encoder, loss.
  Under DDP the embeddings of all ranks are gathered (differentiably) before mining.
* Schedule: AdamW, linear warm-up, cosine decay over the run. With a time budget the decay follows
  elapsed time instead of steps (then the run is not bit-reproducible; with ``epochs`` it is, on CPU), and
  the warm-up lasts at most a tenth of the training time.
* A time budget holds the whole run: before training, the steps after it (the last validation, the
  calibration map, the int8 ranges) are timed on a small share of their work, and training stops early
  enough to leave them that time (``_Budget``).
* Each epoch: few-shot accuracy (5-way 1-shot, seeded episodes) and EER on the held-out classes;
  ``best.pt`` (by accuracy) and ``last.pt`` checkpoints; ``state.pt`` (weights, optimizer, schedule,
  epoch, history: one atomic file, the epoch's commit) so ``resume=True`` continues with nothing lost
  or repeated whatever moment a run was killed; ``metrics.csv``, ``metrics.json`` and a ``curves.png``
  plot. At the end the best checkpoint gets its calibration map and int8 ranges in the run folder and is
  then written to ``out`` in one atomic replace (``out`` appears once, complete: ``_finish``); the
  closing lines say when the model is weak (``_weakness``).
* A resume needs ``state.pt``, ``best.pt`` and the same training data: a run carried to another machine
  copies those two files (about 4x the model's size: ``state.pt`` holds the weights and the optimizer's two
  moments) into the new ``out``'s ``.run`` folder and rebuilds the corpus; ``state.pt`` records a digest of
  the clips (source, class, file name) and a resume on other data is refused.

The function reads as its seams: ``_datasets`` (sources, augmentation, validation split),
``_build_model``, ``_resume``, the epoch loop, ``_validate``, ``_commit_epoch``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ._version import __version__
from .data import AudioClipDataset, DataSource, PKSampler, load_background, load_sources, make_loader, source_items
from .devices import resolve_device
from .errors import AudioLoadError, CheckpointError, ParameterError, TrainingDivergedError
from .evaluation import embed_dataset, few_shot_accuracy, verification_metrics
from .files import make_folder, refuse_folders, refuse_unwritable, write_output
from .io import audio_duration
from .losses import ContrastiveLoss, TripletLoss
from .losses.distillation import relational_distillation_loss
from .models import EmbeddingModel, EncoderConfig, ResNetEncoder, load_checkpoint
from .models.checkpoint import read_trusted, write_checkpoint_file
from .plotting import save_figure
from .transforms import (
    AddNoise,
    BandLimit,
    Compose,
    LogMelSpectrogram,
    MixBackground,
    MixBatch,
    RandomEqualizer,
    RandomGain,
    Reverb,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
)

__all__ = ["TrainConfig", "DataSource", "train", "load_sources"]

SAMPLE_RATE = 16000  # the rate every trained model's front end reads


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in checkpoints).

    The fields are the options of ``audiosiam train`` (``p``, ``k`` and ``init`` spelt
    ``--classes-per-batch``, ``--clips-per-class`` and ``--model`` there).

    Attributes:
        out (str): where the best checkpoint is written; the run's files go to the folder ``<stem>.run``
            beside it. Default: ``"model.pt"``.
        epochs (int): passes of ``steps_per_epoch`` steps, at least 1. Default: ``20``.
        steps_per_epoch (int or None): steps (PK batches) per epoch; ``None``: about one pass over the
            training clips. Default: ``None``.
        time_budget_minutes (float or None): the whole run's time, from reading the data to writing ``out``:
            training stops (the epoch under way is validated and saved) early enough to leave the finishing
            steps their measured time; the learning rate decays over the training time (or over the steps,
            whichever is further along), so the run is not bit-reproducible, and the warm-up lasts at most a
            tenth of it. ``None``: no budget. Default: ``None``.
        p (int): classes per batch (P of a PK batch), capped at the number of usable classes. Default: ``32``.
        k (int): clips per class in a batch (K of a PK batch), at least 2; also how many entries each
            label-free clip gets, so a batch can draw several views of it. Default: ``4``.
        clip_seconds (float): length of the random training crops. Default: ``1.0``.
        loss (str): training loss: ``"triplet"`` or ``"contrastive"``. Default: ``"triplet"``.
        mining (str): triplet mining: ``"batch_hard"``, ``"batch_all"`` or ``"semi_hard"`` (triplet loss
            only). Default: ``"batch_hard"``.
        margin (float): triplet margin (triplet loss only). Default: ``0.2``.
        distance (str): distance between embeddings: ``"euclidean"`` or ``"cosine"``. Default: ``"euclidean"``.
        lr (float): peak learning rate (AdamW), after the warm-up and before the cosine decay; positive.
            Default: ``2e-3``.
        weight_decay (float): AdamW weight decay, >= 0. Default: ``0.05``.
        warmup_steps (int): linear warm-up steps (with a time budget: or a tenth of the training time, whichever
            ends first, with a warning). Default: ``100``.
        embedding_dim (int): embedding size D. Default: ``192``.
        n_mels (int): mel bands of the front end. Default: ``64``.
        normalize (str): log-mel normalisation: ``"utterance"`` or ``"band"`` (see :mod:`audiosiam.functional`).
            Default: ``"utterance"``.
        channels (list of int): encoder widths: stem, then one per stage. Default: ``[32, 48, 96, 160]``.
        blocks (list of int): residual blocks per stage (one entry fewer than ``channels``).
            Default: ``[1, 1, 1]``.
        augment (bool): waveform augmentation (gain, noise, background mixing, time shift, band limiting) and
            SpecAugment; the four options below act only with it. Default: ``True``.
        speed_perturb (float): with ``augment``: half the clips played at 1 +/- up to this speed (e.g.
            0.15); ``0``: off. Default: ``0.0``.
        reverb (float): with ``augment``: probability of a synthetic room response per clip; ``0``: off.
            Default: ``0.0``.
        equalizer (float): with ``augment``: probability of a random +/-9 dB smooth equaliser per clip;
            ``0``: off. Default: ``0.0``.
        mix_batch (float): with ``augment``: probability of mixing in a clip of another class (5-20 dB SNR);
            ``0``: off. Default: ``0.0``.
        val_classes (int or None): labelled classes with 6+ clips held out for validation (drawn with
            ``seed``); ``None``: a tenth of them, 5 to 50; ``0``: no validation, and the best checkpoint is
            the one of lowest training loss. Default: ``None``.
        val_sources (list of str or None): sources whose classes may be held out for validation (e.g. to
            keep every spoken word of a small word set in training); ``None``: all. Default: ``None``.
        val_classes_of (str or None): validate on exactly the validation classes of this checkpoint (a
            preset name such as ``"default"``, or a path) instead of a new draw; for fine-tuning, so that
            no class the starting model trained on is validated on, and none it was validated on is
            trained on, whatever data was added. Overrides ``val_classes`` and ``val_sources``.
            Default: ``None``.
        val_episodes (int): validation episodes (5-way 1-shot, seeded) per epoch. Default: ``300``.
        calibration_episodes (int): open-set episodes of the validation classes on which the written
            checkpoint's calibration map is fitted at the end of the run (:mod:`audiosiam.fewshot.calibration`);
            ``0``, or no validation: no map (classification then falls back to the earlier rule).
            Default: ``3000``.
        unlabelled_share (float): fraction of each batch's classes drawn from label-free clips, when there
            are any. Default: ``0.3``.
        balance_sources (bool): each labelled source gets an equal share of the drawn classes (weighted by
            its ``DataSource.weight``), so a source with 8 words counts as much as one with 100 drum sounds;
            ``False``: every class equally likely. Default: ``True``.
        seed (int): random seed (initial weights, crops, augmentation, batches, validation split).
            Default: ``0``.
        num_workers (int): DataLoader worker processes. Default: ``0``.
        device (str): where to train: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or
            ``"cuda"``. Default: ``"auto"``.
        resume (bool): continue the run in ``out``'s ``.run`` folder from its ``state.pt``, with nothing lost
            or repeated. Default: ``False``.
        init (str or None): start from this checkpoint's weights (fine-tuning): a preset name such as
            ``"default"``, or a checkpoint path, whose architecture must match this config's. ``None``:
            random initial weights. Default: ``None``.
        teacher (str or None): distil from this model (a preset such as ``"sfx"``, or a checkpoint): each
            step adds ``distill_weight`` times :func:`~audiosiam.losses.relational_distillation_loss` between
            the student's embeddings of the batch's clips of ``distill_sources`` and the teacher's embeddings
            of the same clips (whole clips, computed once and cached on disk by content:
            :class:`~audiosiam.data.teacher_cache.TeacherCache`). ``None``: no teacher. Default: ``None``.
        distill_weight (float): weight of the teacher's term against the triplet/contrastive loss, >= 0.
            Default: ``1.0``.
        distill_sources (list of str or None): the sources (recipe names, labelled and label-free alike)
            whose clips the teacher is asked about: those it knows (a sound-effects teacher: not speech).
            ``None``: every source. Default: ``None``.
        distill_temperature (float): softmax temperature of the relational loss (> 0). Default: ``0.5``.
        anchor_weight (float): with ``init``, weight of the same relational loss between the student and a
            frozen copy of the starting model, on the clips *outside* ``distill_sources``: keeps what the
            starting model knew where the teacher knows nothing (speech). ``0``: off. Default: ``0.0``.
        distill_projector (bool): compute the teacher's term on a learnt linear map of the student's embedding
            (identity at the start, dropped after training) instead of the embedding itself: the teacher's
            ranking is taught to a view of the embedding, which leaves the embedding freer to keep what the
            teacher knows nothing of (the projector of feature distillation; Miles and Mikolajczyk, 2024).
            Default: ``False``.
        teacher_cache (str or None): root folder of the teacher embedding cache; ``None``:
            ``$AUDIOSIAM_TEACHER_CACHE`` or ``~/.cache/audiosiam/teacher``. Default: ``None``.
    """

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
    val_sources: list[str] | None = None  # sources whose classes may be held out for validation (None: all)
    val_classes_of: str | None = None  # validate on this checkpoint's validation classes (fine-tuning)
    val_episodes: int = 300
    calibration_episodes: int = 3000  # fitting episodes of the checkpoint's calibration map; 0: none
    unlabelled_share: float = 0.3  # fraction of each batch's classes drawn from label-free clips
    balance_sources: bool = True  # each labelled source gets an equal share of the drawn classes
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    resume: bool = False
    init: str | None = None  # start from this checkpoint's weights (fine-tuning)
    teacher: str | None = None  # distil from this model (a preset or a checkpoint)
    distill_weight: float = 1.0
    distill_sources: list[str] | None = None  # sources whose clips the teacher is asked about (None: all)
    distill_temperature: float = 0.5
    anchor_weight: float = 0.0  # relational loss to the frozen starting model, outside distill_sources
    distill_projector: bool = False  # the teacher's term on a learnt linear view of the embedding
    teacher_cache: str | None = None


def _split_classes(
    dataset: AudioClipDataset, n_val: int | None, seed: int, min_clips: int = 6, sources: Sequence[str] | None = None
):
    """The validation classes: ``n_val`` labelled classes with ``min_clips``+ clips, drawn with ``seed``, from
    ``sources`` only when given (e.g. to keep every spoken word of a small word set in training)."""
    counts = dataset.class_counts()
    source_of = {it.label: it.source for it in dataset.items if not it.label_free}
    eligible = sorted(
        c
        for c, n in counts.items()
        if n >= min_clips and c in source_of and (sources is None or source_of[c] in sources)
    )
    if sources is not None and not eligible:
        raise ParameterError(
            f"val_sources={list(sources)}: no class of these sources has {min_clips}+ clips; "
            f"sources are {sorted(set(source_of.values()))}"
        )
    if n_val is None:  # automatic: a tenth of the classes, 5 to 50, and none where that leaves too few
        n_val = min(50, max(5, len(eligible) // 10))
        if len(eligible) - n_val < 2:
            warnings.warn(
                f"only {len(eligible)} classes have {min_clips}+ clips: training without validation classes "
                "(the epoch with the lowest training loss is kept); --val-classes N holds N out",
                stacklevel=2,
            )
            return set()
    if n_val and len(eligible) - n_val < 2:
        raise ParameterError(
            f"only {len(eligible)} classes have {min_clips}+ clips: too few to hold {n_val} out for "
            "validation and still train; pass --val-classes 0 (val_classes=0) or add data"
        )
    g = torch.Generator().manual_seed(seed)
    held = {eligible[i] for i in torch.randperm(len(eligible), generator=g)[:n_val].tolist()}
    return held


def _classes_of(checkpoint: str, dataset: AudioClipDataset) -> set[str]:
    """The validation classes recorded in ``checkpoint`` (``info.validation_classes``) that this data has."""
    from .models import load_model

    recorded = load_model(checkpoint).info.validation_classes
    if not recorded:
        raise ParameterError(
            f"val_classes_of={checkpoint!r}: the checkpoint records no validation classes; use --val-classes instead"
        )
    held = set(recorded) & set(dataset.class_counts())
    if not held:
        raise ParameterError(
            f"val_classes_of={checkpoint!r}: none of its {len(recorded)} validation classes (e.g. {recorded[0]!r}) "
            "is in this data; train on the sources it was trained on (same source names), or use --val-classes"
        )
    return held


def _class_weights(
    dataset: AudioClipDataset,
    unlabelled_share: float,
    balance_sources: bool,
    source_weights: dict[str, float] | None = None,
) -> dict[int, float] | None:
    """Class-drawing weights for the PK sampler.

    Label-free clips share ``unlabelled_share`` of the draws, labelled classes the rest. With
    ``balance_sources`` each source gets a share in proportion to its weight in ``source_weights``
    (default 1), split equally among its classes, so a source with 8 words counts as much as one with
    100 drum sounds; otherwise every class of a kind is equal.
    """
    weight_of = source_weights or {}
    kind = {it.label: (it.source, it.label_free) for it in dataset.items}
    free = [i for i, c in enumerate(dataset.classes) if kind[c][1]]
    labelled = [i for i, c in enumerate(dataset.classes) if not kind[c][1]]
    if not labelled:
        return None
    weights = {}
    for members, share in ((labelled, (1.0 - unlabelled_share) if free else 1.0), (free, unlabelled_share)):
        by_source: dict[str, list[int]] = {}
        for i in members:
            by_source.setdefault(kind[dataset.classes[i]][0] if balance_sources else "", []).append(i)
        total = sum(float(weight_of.get(name, 1.0)) for name in by_source)
        for name, group in by_source.items():
            weights.update({i: share * float(weight_of.get(name, 1.0)) / (total * len(group)) for i in group})
    return weights


def _augmentation(config: TrainConfig, sample_rate: int, background: list[torch.Tensor]):
    """``(per-clip waveform augmentation or None, batch mixing or None, SpecAugment or None)``, in the order a
    sound meets them: the source (speed), the room (reverb), other sounds, the channel (gain, EQ, band)."""
    if not config.augment:
        return None, None, None
    parts = [
        RandomGain((-10.0, 6.0), p=0.8),
        AddNoise((10.0, 40.0), p=0.3),
        TimeShift(0.1, p=0.3),
        BandLimit(sample_rate, (3000.0, 7000.0), p=0.3),
    ]
    if background:
        parts.insert(1, MixBackground(background, (3.0, 25.0), p=0.4))
    if config.speed_perturb > 0:
        parts.insert(0, SpeedPerturb((1 - config.speed_perturb, 1 + config.speed_perturb), p=0.5))
    if config.reverb > 0:
        parts.insert(1 if config.speed_perturb > 0 else 0, Reverb(p=config.reverb, sample_rate=sample_rate))
    if config.equalizer > 0:
        parts.insert(len(parts) - 1, RandomEqualizer(p=config.equalizer, sample_rate=sample_rate))
    mix_batch = MixBatch(p=config.mix_batch) if config.mix_batch > 0 else None
    spec_augment = SpecAugment(time_masks=2, time_width=12, freq_masks=2, freq_width=8, p=0.8)
    return Compose(parts), mix_batch, spec_augment


def _datasets(config: TrainConfig, sources, unlabelled, background, *, rank: int, say, progress: bool):
    """``(train_set, val_set or None, held-out class names, batch mixing, SpecAugment)``, every clip read once."""
    augment, mix_batch, spec_augment = _augmentation(
        config, SAMPLE_RATE, load_background(background, SAMPLE_RATE) if background else []
    )
    full = AudioClipDataset(
        source_items(sources, unlabelled, copies=config.k),
        sample_rate=SAMPLE_RATE,
        clip_seconds=config.clip_seconds,
        crop="random",
        augment=augment,
        seed=config.seed + 7919 * rank,
        on_error="skip",
    )
    say(full.summary())
    if config.val_classes_of:
        held = _classes_of(config.val_classes_of, full)
    else:
        held = _split_classes(full, config.val_classes, config.seed, sources=config.val_sources)
    # a file listed by two sources (a variant class and a kind of sound, say) is held out under both names
    held_files = {it.path for it in full.items if it.label in held}
    train_set = full.subset(lambda it: it.label not in held and it.path not in held_files)
    val_set = full.subset(lambda it: it.label in held) if held else None
    if val_set is not None:
        val_set.augment, val_set.clip_seconds = None, None
    say(
        f"training on {len(train_set)} clips of {len(train_set.classes)} classes; "
        f"validating on {len(val_set) if val_set else 0} clips of {len(held)} held-out classes"
    )
    train_set.validate(progress=progress)
    if val_set is not None:
        val_set.validate()
    return train_set, val_set, held, mix_batch, spec_augment


def _build_model(config: TrainConfig) -> EmbeddingModel:
    frontend = LogMelSpectrogram(SAMPLE_RATE, n_mels=config.n_mels, normalize=config.normalize)
    encoder = ResNetEncoder(
        EncoderConfig(
            n_mels=config.n_mels,
            channels=tuple(config.channels),
            blocks=tuple(config.blocks),
            embedding_dim=config.embedding_dim,
        )
    )
    model = EmbeddingModel(frontend, encoder)
    if config.init:  # a checkpoint or a bundled preset name (e.g. "default")
        from .models import load_model

        start = load_model(config.init)
        theirs, ours = start.encoder.config, encoder.config
        differ = [
            f"{k} {getattr(theirs, k)} (this run: {getattr(ours, k)})"
            for k in asdict(ours)
            if getattr(theirs, k) != getattr(ours, k)
        ]
        if differ or start.frontend.n_mels != frontend.n_mels:
            raise ParameterError(
                f"init={config.init!r}: its encoder has {', '.join(differ) or f'n_mels {start.frontend.n_mels}'}; "
                "to fine-tune it, leave the architecture options (--channels, --blocks, --embedding-dim, --n-mels) "
                "at the values it was trained with"
            )
        model.load_state_dict(start.state_dict())
    return model


def _validate(model: EmbeddingModel, val_set: AudioClipDataset, config: TrainConfig) -> dict:
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


def _calibrate_checkpoint(path, val_set: AudioClipDataset, episodes: int, seed: int, say):
    """Fit the calibration maps of the checkpoint at ``path`` (both rules) on the validation classes, each
    source its own domain, and write it back atomically (the weights are those read). Returns
    ``(embeddings, labels, maps)`` of the validation clips, or ``None`` when no map could be fitted."""
    from .fewshot.fitting import fit_calibration
    from .fewshot.rules import RULES

    model = load_checkpoint(path)
    emb, labels = embed_dataset(model, val_set)
    domains = [item.source for item in val_set.items]
    try:
        maps = {
            rule: fit_calibration(emb, labels, domains=domains, rule=rule, episodes=episodes, seed=seed).to_dict()
            for rule in RULES
        }
    except ParameterError as exc:
        say(f"no calibration map: {exc}")
        return None
    model.save(path, calibration=maps)
    say(f"calibration map fitted on {len(val_set.classes)} validation classes ({episodes} episodes per rule)")
    return emb, labels, maps


def _int8_applies(model: EmbeddingModel) -> bool:
    from .models.quantized import int8_available

    return int8_available() and model.frontend.normalize == "utterance"


def _fit_int8_ranges(path, files: list[str], seed: int, say) -> None:
    """Measure the int8 ranges of the checkpoint at ``path`` on its training clips (long recordings then
    run its trunk in 8-bit integers: ``models/quantized.py``) and write it back atomically."""
    from .models.int8_ranges import fit_int8_ranges
    from .models.quantized import RANGES_KEY

    model = load_checkpoint(path)
    if not _int8_applies(model):
        say("no int8 ranges: long recordings will run this model in float32")
        return
    model.save(path, **{RANGES_KEY: fit_int8_ranges(model, files, seed=seed)})
    say("int8 ranges measured on the training clips (for long recordings)")


# the weak-model check of the closing summary: episodes of the calibrated classifier on the validation clips
WEAK_EPISODES, WEAK_SHOTS, WEAK_QUERIES = 100, 3, 2
WEAK_MARGIN = 0.1  # an accuracy less than this above chance is "near chance"
WEAK_UNKNOWN = 0.9  # answering unknown to this share of clips of enrolled classes is "everything unknown"


def _weak_ways(n_classes: int) -> int:
    return min(5, n_classes // 2)


def _finish(out: Path, run_dir: Path, val_set, files: list[str], config: TrainConfig, say):
    """The steps after training: the best checkpoint's calibration map and int8 ranges, measured on a copy in
    the run folder that then replaces ``out`` in one step, so ``out`` appears once, complete (a kill on
    the way leaves the previous ``out``, or none). Returns ``_calibrate_checkpoint``'s answer."""
    final = run_dir / "final.pt"
    write_output(final, lambda tmp: shutil.copyfile(run_dir / "best.pt", tmp))
    calibrated = None
    if val_set is not None and config.calibration_episodes > 0:
        calibrated = _calibrate_checkpoint(final, val_set, config.calibration_episodes, config.seed, say)
    _fit_int8_ranges(final, files, config.seed, say)
    write_output(out, lambda tmp: shutil.copyfile(final, tmp))
    final.unlink(missing_ok=True)
    return calibrated


def _weakness(best_accuracy: float | None, n_classes: int, calibrated, seed: int) -> list[str]:
    """Why the written model is weak, in words (empty when it is not): a held-out accuracy near chance, or a
    classifier that answers ``unknown`` to nearly every clip of a class it enrolled."""
    from .evaluation import calibration_metrics
    from .fewshot.classifier import EXPECTED_UNKNOWN

    reasons = []
    ways = min(5, n_classes)
    if best_accuracy is not None and ways >= 2 and best_accuracy < 1 / ways + WEAK_MARGIN:
        reasons.append(f"its held-out {ways}-way 1-shot accuracy, {best_accuracy:.2f}, is near chance ({1 / ways:.2f})")
    if calibrated is not None and _weak_ways(n_classes) >= 1:
        emb, labels, maps = calibrated
        try:
            rate = calibration_metrics(
                emb,
                labels,
                n_way=_weak_ways(n_classes),
                k_shot=WEAK_SHOTS,
                n_query=WEAK_QUERIES,
                episodes=WEAK_EPISODES,
                calibration=maps,
                expected_unknown=EXPECTED_UNKNOWN,
                seed=seed,
            )["false_reject_rate"]
        except ParameterError:  # too few clips per class for these episodes: not judged
            rate = None
        if rate is not None and rate >= WEAK_UNKNOWN:
            reasons.append(
                f"classify answers unknown to {rate:.0%} of held-out clips of the classes it enrolled "
                f"({WEAK_SHOTS} clips each)"
            )
    return reasons


def _scaled_time(call, small: float, large: float) -> float:
    """Seconds ``call(large)`` would take: ``call(small)`` timed after an untimed warm-up on a tenth of it
    (imports, first-call set-up), scaled by ``large / small``. Counts are rounded by ``call``, at least 1."""
    call(small / 10)
    start = time.perf_counter()
    call(small)
    return (time.perf_counter() - start) * large / small


def _finishing_seconds(model: EmbeddingModel, val_set, files: list[str], config: TrainConfig) -> dict[str, float]:
    """About how long the steps after the training loop take, timed now on a small share of each (their cost
    does not depend on the weights): the last validation, the calibration map (embedding the validation
    clips, fitting both rules, the weak-model check) and the int8 ranges. ``{step: seconds}``."""
    import copy

    from .evaluation import calibration_metrics
    from .fewshot.fitting import fit_calibration
    from .fewshot.rules import RULES
    from .models.int8_ranges import fit_int8_ranges

    cost = {}
    model = copy.deepcopy(model).cpu().eval()  # the finishing steps read the checkpoint on the CPU
    if val_set is not None:
        n_classes = len(val_set.classes)
        waves = [val_set.load(i) for i in range(min(len(val_set), 32))]
        embed = _scaled_time(
            lambda n: model.embed(waves[: max(1, round(n))], sample_rate=val_set.sample_rate), len(waves), len(val_set)
        )
        # stand-in embeddings of the validation set's size: the episodes cost the same whatever the values
        fake = torch.randn(len(val_set), model.embedding_dim, generator=torch.Generator().manual_seed(0))
        fake, labels = torch.nn.functional.normalize(fake, dim=1), torch.as_tensor(val_set.labels)
        episodes = _scaled_time(
            lambda n: few_shot_accuracy(
                fake, labels, n_way=min(5, n_classes), k_shot=1, n_query=5, episodes=max(1, round(n))
            ),
            min(config.val_episodes, 50),
            config.val_episodes,
        )
        start = time.perf_counter()
        verification_metrics(fake, labels)
        cost["validation"] = embed + episodes + time.perf_counter() - start
        if config.calibration_episodes > 0:
            domains = [item.source for item in val_set.items]
            maps = {}

            def fit(n):
                maps.update(
                    {
                        r: fit_calibration(fake, labels, domains=domains, rule=r, episodes=max(5, round(n))).to_dict()
                        for r in RULES
                    }
                )

            def check(n):
                calibration_metrics(fake, labels, n_way=_weak_ways(n_classes), k_shot=WEAK_SHOTS,
                                    n_query=WEAK_QUERIES, episodes=max(1, round(n)), calibration=maps)  # fmt: skip

            try:
                fitting = _scaled_time(fit, min(config.calibration_episodes, 100), config.calibration_episodes)
                weak = _scaled_time(check, 10, WEAK_EPISODES) if _weak_ways(n_classes) >= 1 else 0.0
            except ParameterError:  # no map will be fitted: only the embedding is spent
                fitting = weak = 0.0
            cost["calibration"] = embed + fitting + weak
    if _int8_applies(model):
        seconds = 0.0  # the audio fit_int8_ranges reads: each clip's first 10 s, up to 30 minutes
        for path in dict.fromkeys(files):
            try:
                seconds += min(10.0, audio_duration(path))
            except AudioLoadError:
                pass
            if seconds >= 30 * 60:
                break
        if seconds > 0:
            cost["int8 ranges"] = _scaled_time(
                lambda minutes: fit_int8_ranges(model, files, minutes=minutes, seed=config.seed),
                min(1.0, seconds / 60),
                min(30.0, seconds / 60),
            )
    return cost


class _Budget:
    """A time budget that holds the whole run (``time_budget_minutes``): training stops after ``training``
    seconds (of ``time.time() - t0``), leaving the setup already spent and the finishing steps their time.

    Args:
        minutes (float): the budget.
        finishing (float): seconds the steps after training take (``_finishing_seconds``, with a margin).
        spent (float): seconds already spent before training (reading the data, timing the finishing steps).
    A resumed run's earlier training time counts against the budget (``t0`` includes it).
    """

    WARMUP_SHARE = 0.1  # the warm-up lasts at most this share of the training time
    MARGIN = 1.25  # the finishing steps' measured time is stretched by this, for a busy machine
    LEAST_SHARE = 0.25  # training gets at least this share of the budget, whatever the finishing takes

    def __init__(self, minutes: float, finishing: float, spent: float):
        self.total = 60.0 * minutes
        self.finishing = finishing * self.MARGIN
        left = self.total - self.finishing - spent
        self.squeezed = left < self.LEAST_SHARE * self.total
        self.training = max(left, self.LEAST_SHARE * self.total)
        self.spent = spent
        self.warned = False

    def describe(self) -> str:
        steps = "the last validation, calibration map and int8 ranges"
        if self.squeezed:
            return (
                f"time budget {self.total / 60:g} min: {steps} take about {self.finishing:.0f} s, more than the budget "
                f"leaves after {self.spent:.0f} s of setup; training for {self.LEAST_SHARE:.0%} of it, so the run "
                f"will take about {(self.spent + self.LEAST_SHARE * self.total + self.finishing) / 60:.1f} min"
            )
        return (
            f"time budget {self.total / 60:g} min: training stops after {self.training / 60:.1f} min, leaving about "
            f"{self.finishing:.0f} s for {steps} (timed now on a share of each; {self.spent:.0f} s of setup spent)"
        )

    def over(self, elapsed: float) -> bool:
        return elapsed > self.training


def _commit_epoch(
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
    atomic checkpoints for people (a torn copy never replaces a good one)."""
    model.save(run_dir / "last.pt")
    if improved:
        model.save(run_dir / "best.pt")
    _commit_state(
        run_dir, model, optimizer, epoch=epoch, step=step, history=history, best=best, elapsed=elapsed, **(extra or {})
    )
    _write_metrics(history, run_dir)


def _commit_state(run_dir: Path, model: EmbeddingModel, optimizer, **counters) -> None:
    """Write ``state.pt``, the commit a resume reads (``epoch`` -1: the run's start, before any step)."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        **counters,
    }
    write_checkpoint_file(run_dir / "state.pt", state)


def _diverged(epoch: int, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, files: list[str], run_dir: Path):
    """Stop a run whose step gave a non-finite loss or gradient, before the optimizer applies it: the
    checkpoints on disk are the last good epoch's."""
    shown = "\n  ".join(files[:8]) + (f"\n  ... and {len(files) - 8} more" if len(files) > 8 else "")
    raise TrainingDivergedError(
        f"epoch {epoch + 1}, step {step + 1}: the {'loss' if not torch.isfinite(loss) else 'gradient'} is not finite "
        f"(loss {float(loss):.4g}, gradient norm {float(grad_norm):.4g}); nothing of this step was applied, and "
        f"{run_dir} holds the last good epoch (resume with --resume, perhaps with a lower --lr). The batch's "
        f"files (check them for corrupt or absurdly loud audio):\n  {shown}"
    )


def _training_data_digest(items) -> dict:
    """Which clips a run trains on, by source, class and file name (not the folder: a corpus rebuilt on
    another machine, under another home, is the same corpus), so that a resume on other data is refused."""
    digest = hashlib.sha256()
    for line in sorted(f"{it.source}\t{it.label}\t{Path(it.path).name}" for it in items):
        digest.update(line.encode() + b"\n")
    return {"clips": len(items), "sha256": digest.hexdigest()}


def _check_same_data(state: dict, data: dict, state_path: Path) -> None:
    kept = state.get("training_data")
    if kept is None or kept == data:  # states written before the digest existed are not checked
        return
    raise ParameterError(
        f"resume: {state_path} was trained on {kept.get('clips')} clips (digest {str(kept.get('sha256'))[:12]}), "
        f"this run reads {data['clips']} (digest {data['sha256'][:12]}): the training data differ. Rebuild the "
        "corpus with the command the run started from (e.g. scripts/fetch_training_data.py with the same "
        "options) and the same recipe, or start a new run without --resume"
    )


def _run_dir(out: str | os.PathLike) -> Path:
    """The folder of a run's files: ``<stem>.run`` beside the checkpoint."""
    out = Path(out)
    return out.parent / f"{out.stem}.run"


def _resume(run_dir: Path, model: EmbeddingModel, optimizer, distillation=None) -> dict:
    """Load a run's ``state.pt`` into ``model``, ``optimizer`` and ``distillation`` (its projector); returns it."""
    state_path = run_dir / "state.pt"
    if not state_path.is_file():
        raise ParameterError(
            f"resume: {state_path} does not exist: nothing of this run was committed (a run commits its start, "
            "then each epoch, there; one stopped while reading its data has none); start it without --resume"
        )
    fix = "it is damaged; start the run again without --resume, or into a new --out"
    state = read_trusted(state_path, "training state", fix)
    problem = _state_problem(state)
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


def _state_problem(state) -> str | None:
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


def _lr_factor(progress: float, step: int, warmup: int, warmup_share: float | None = None) -> float:
    """The learning rate's share of its peak: linear warm-up over ``warmup`` steps (or, given ``warmup_share``,
    until ``progress`` reaches it, whichever comes first), then a cosine decay over ``progress`` 0 to 1."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    if warmup_share is not None:
        warm = max(warm, min(1.0, progress / warmup_share))
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
    save_figure(plt, fig, path)


def _write_metrics(history: list[dict], run_dir: Path) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    write_output(run_dir / "metrics.csv", write_csv)
    write_output(run_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(history, indent=2)))
    _plot_curves(history, run_dir / "curves.png")


def _warn_short_warmup(budget: _Budget, progress: float, step: int, warmup: int) -> None:
    """Warn once when the budget's tenth ends the warm-up before ``warmup`` steps (the budget allows fewer)."""
    if budget.warned or progress < budget.WARMUP_SHARE or step + 1 >= warmup:
        return
    budget.warned = True
    warnings.warn(
        f"--warmup-steps {warmup} is more than this time budget allows (about {round(step / progress)} steps in "
        f"all at this pace): the warm-up lasted a tenth of the training time, {step} steps",
        stacklevel=3,
    )


def _shared(value: float, world: int, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (so all ranks stop training at the same step)."""
    if world == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


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


class _Distillation:
    """The relational terms of a run: the teacher's on the clips of ``distill_sources`` (embeddings read
    once from the cache, per training item) and the frozen starting model's on the others."""

    def __init__(self, config: TrainConfig, train_set: AudioClipDataset, model: EmbeddingModel, say, progress: bool):
        self.config = config
        if config.distill_weight < 0 or config.anchor_weight < 0 or not config.distill_temperature > 0:
            raise ParameterError(
                f"distill_weight={config.distill_weight}, anchor_weight={config.anchor_weight}, "
                f"distill_temperature={config.distill_temperature}: weights must be >= 0 and the temperature > 0"
            )
        if config.anchor_weight > 0 and config.init is None:
            raise ParameterError("anchor_weight > 0 keeps the starting model's similarities: it needs init (--model)")
        sources = {it.source for it in train_set.items}
        wanted = set(config.distill_sources) if config.distill_sources is not None else sources
        unknown = sorted(wanted - sources)
        if unknown:
            raise ParameterError(f"distill_sources: {unknown} are not sources of this run ({sorted(sources)})")
        self.distilled = torch.tensor([it.source in wanted for it in train_set.items], dtype=torch.bool)
        self.teacher_rows = None
        if config.teacher is not None:
            from .data.teacher_cache import TeacherCache
            from .models import load_model

            teacher = load_model(config.teacher)
            cache = TeacherCache(teacher, config.teacher_cache)
            index = torch.nonzero(self.distilled).flatten().tolist()
            rows = cache.embeddings([train_set.items[i].path for i in index], progress=progress)
            self.teacher_rows = torch.zeros(len(train_set.items), rows.shape[1] if len(index) else 1)
            self.teacher_rows[index] = rows
            say(
                f"teacher {config.teacher}: {len(set(train_set.items[i].path for i in index))} clips of "
                f"{len(wanted)} sources ({cache.computed} embedded now, the rest read from {cache.folder})"
            )
        self.anchor = None
        if config.anchor_weight > 0:
            import copy

            self.anchor = copy.deepcopy(model.encoder).eval().requires_grad_(False)
        self.projector = None
        if config.distill_projector and self.teacher_rows is not None:
            dim = model.embedding_dim
            self.projector = torch.nn.Linear(dim, dim, bias=False)
            torch.nn.init.eye_(self.projector.weight)

    def to(self, device) -> "_Distillation":
        for module in (self.anchor, self.projector):
            if module is not None:
                module.to(device)
        return self

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer trains besides the model: the projector's weights, if any."""
        return list(self.projector.parameters()) if self.projector is not None else []

    def state_dict(self) -> dict:
        """What a resume needs besides the model and optimizer (the projector's weights)."""
        return {"projector": self.projector.state_dict()} if self.projector is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.projector is not None:
            self.projector.load_state_dict(state["projector"])

    @property
    def active(self) -> bool:
        return self.teacher_rows is not None or self.anchor is not None

    def loss(self, emb: torch.Tensor, feats: torch.Tensor, batch: list[int]) -> torch.Tensor:
        """The weighted relational terms for one step's local embeddings ``emb`` of items ``batch``."""
        index = torch.as_tensor(batch)
        taught = self.distilled[index].to(emb.device)
        total = emb.new_zeros(())
        temperature = self.config.distill_temperature
        if self.teacher_rows is not None and self.config.distill_weight > 0:
            target = self.teacher_rows[index].to(emb.device)
            student = emb[taught] if self.projector is None else self.projector(emb[taught])
            total = total + self.config.distill_weight * relational_distillation_loss(
                student, target[taught], temperature=temperature
            )
        if self.anchor is not None:
            kept = ~taught
            with torch.no_grad():
                anchored = self.anchor(feats[kept].float()) if bool(kept.any()) else emb[kept].detach()
            total = total + self.config.anchor_weight * relational_distillation_loss(
                emb[kept], anchored, temperature=temperature
            )
        return total


def train(
    config: TrainConfig,
    sources: Sequence[DataSource],
    *,
    unlabelled: Sequence[DataSource] = (),
    background: Sequence[str] = (),
    progress: bool = True,
    log=print,
) -> dict:
    """Train an encoder; returns the final metrics dict. See the module docstring for what is written.

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
    rank, world = _distributed_setup()
    is_main = rank == 0
    say = log if is_main else (lambda *a, **k: None)
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.manual_seed(config.seed)
    if config.loss not in ("triplet", "contrastive"):
        raise ParameterError(f"loss={config.loss!r}: expected 'triplet' or 'contrastive'")
    refuse_folders(config.out)  # now, not after the whole run
    refuse_unwritable(_run_dir(config.out), config.out)
    if config.epochs < 1 or not config.lr > 0 or config.weight_decay < 0:
        raise ParameterError(
            f"epochs={config.epochs}, lr={config.lr}, weight_decay={config.weight_decay}: expected "
            "at least 1 epoch, a positive learning rate and a weight decay >= 0"
        )

    train_set, val_set, held, mix_batch, spec_augment = _datasets(
        config, sources, unlabelled, background, rank=rank, say=say, progress=progress and is_main
    )
    model = _build_model(config).to(device)
    distillation = _Distillation(config, train_set, model, say, progress and is_main).to(device)
    training_data = _training_data_digest(train_set.items)
    net = model.encoder
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model.encoder, device_ids=[device.index] if device.type == "cuda" else None
        )
    criterion = (
        TripletLoss(margin=config.margin, mining=config.mining, distance=config.distance, track_stats=True)
        if config.loss == "triplet"
        else ContrastiveLoss(distance=config.distance, track_stats=True)
    )
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *distillation.parameters()], lr=config.lr, weight_decay=config.weight_decay
    )
    weights = {(s.name or f"source{i}"): s.weight for i, s in enumerate(sources)} | {
        (s.name or "free"): s.weight for s in unlabelled
    }
    sampler = PKSampler(
        train_set.labels,
        config.p,
        config.k,
        batches=config.steps_per_epoch,
        seed=config.seed + 1000 * rank,
        class_weights=_class_weights(train_set, config.unlabelled_share, config.balance_sources, weights),
    )
    loader = make_loader(train_set, sampler, num_workers=config.num_workers, device=device)
    total_steps = config.epochs * len(sampler)
    use_amp = device.type == "cuda"

    out = Path(config.out)
    run_dir = _run_dir(out)
    start_epoch, step, history, best, elapsed_before = 0, 0, [], float("-inf"), 0.0
    if config.resume:
        state = _resume(run_dir, model, optimizer, distillation)
        _check_same_data(state, training_data, run_dir / "state.pt")
        if state["epoch"] >= 0 and not (run_dir / "best.pt").is_file():
            raise ParameterError(
                f"resume: {run_dir / 'best.pt'} is missing (the best epoch's model, which the run writes to "
                f"{config.out} at its end): copy it with state.pt, or start a new run without --resume"
            )
        start_epoch, step, history, best = state["epoch"] + 1, state["step"], state["history"], state["best"]
        elapsed_before = state["elapsed"]
        say(f"resuming after epoch {start_epoch} (step {step})" if start_epoch else "resuming from the start")
    if is_main:
        make_folder(run_dir)
        if not config.resume:  # the start is committed too, so a run killed in its first epoch resumes
            _commit_state(
                run_dir, model, optimizer, epoch=-1, step=0, history=[], best=best, elapsed=0.0,
                distillation=distillation.state_dict(), training_data=training_data,
            )  # fmt: skip
    train_files = [it.path for it in train_set.items]
    budget = None
    if config.time_budget_minutes is not None:
        finishing = sum(_finishing_seconds(model, val_set, train_files, config).values()) if is_main else 0.0
        budget = _Budget(config.time_budget_minutes, _shared(finishing, world, device), time.time() - started)
        say(budget.describe())
    t0 = time.time() - elapsed_before
    # the labelled classes only: thousands of label-free clips would each be a "class" named by its path
    train_classes = sorted({it.label for it in train_set.items if not it.label_free})
    label_free_clips = len({it.path for it in train_set.items if it.label_free})

    for epoch in range(start_epoch, config.epochs):
        if budget is not None and epoch > start_epoch and budget.over(time.time() - t0):
            say(f"time budget: training stopped after epoch {epoch} (its validation ended the training time)")
            break
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        losses, active, distill_losses = [], [], []
        iterator = loader
        if progress and is_main:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
        stop = False
        batches = iter(sampler)  # the same batches the loader draws, in its order: named when a step diverges
        for waves, labels in iterator:
            batch = next(batches)
            if mix_batch is not None:  # before the device copy: the batch's clips mixed on the CPU, seeded per step
                waves = mix_batch(waves, labels, torch.Generator().manual_seed(config.seed * 13 + step * world + rank))
            waves, labels = waves.to(device, non_blocking=True), labels.to(device)
            progress_frac = step / max(1, total_steps)
            if budget is not None:
                progress_frac = max(progress_frac, (time.time() - t0) / budget.training)
                _warn_short_warmup(budget, progress_frac, step, config.warmup_steps)
            warmup_share = budget.WARMUP_SHARE if budget is not None else None
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(progress_frac, step, config.warmup_steps, warmup_share)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                feats = model.frontend(waves)
                if spec_augment is not None:
                    feats = spec_augment(feats, torch.Generator().manual_seed(config.seed * 7 + step * world + rank))
                emb = net(feats)
            emb_all, labels_all = _gather(emb.float(), labels, world)
            loss = criterion(emb_all, labels_all)
            if distillation.active:
                distill = distillation.loss(emb.float(), feats, batch)
                distill_losses.append(float(distill.detach()))
                loss = loss + distill
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):  # one check, one sync per step
                _diverged(epoch, step, loss.detach(), grad_norm, [train_set.items[i].path for i in batch], run_dir)
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            active.append(criterion.last_stats.get("active_fraction", 0.0))
            if progress and is_main and hasattr(iterator, "set_postfix"):
                iterator.set_postfix(
                    loss=f"{losses[-1]:.3f}", active=f"{active[-1]:.2f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}"
                )
            if budget is not None and budget.over(time.time() - t0):
                stop = True
                break
        record = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": sum(losses) / max(1, len(losses)),
            "active_fraction": sum(active) / max(1, len(active)),
            "elapsed_minutes": (time.time() - t0) / 60,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if distill_losses:
            record["distill_loss"] = sum(distill_losses) / len(distill_losses)
        if is_main and val_set is not None:
            record.update(_validate(model, val_set, config))
        history.append(record)
        if is_main:
            say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            score = record.get("val_accuracy", -record["train_loss"])
            model.info = {
                "audiosiam_version": __version__,
                "training_config": asdict(config),
                "sources": [asdict(s) for s in sources],
                "unlabelled": [asdict(s) for s in unlabelled],
                "background": list(background),
                "label_set": train_classes,
                "label_free_clips": label_free_clips,
                "validation_classes": sorted(held),
                "metrics": dict(record),
                "training_minutes": record["elapsed_minutes"],
            }
            if "val_eer_threshold" in record:
                model.info["verification_threshold"] = record["val_eer_threshold"]
            improved = score > best
            best = max(best, score)
            _commit_epoch(
                run_dir,
                model,
                optimizer,
                epoch=epoch,
                step=step,
                history=history,
                best=best,
                improved=improved,
                elapsed=time.time() - t0,
                extra={"distillation": distillation.state_dict(), "training_data": training_data},
            )
        if stop:
            say(f"time budget: training stopped in epoch {epoch + 1}")
            break
    if is_main:
        if budget is not None:
            say(
                f"finishing: calibration map and int8 ranges (with the last validation, about "
                f"{budget.finishing:.0f} s of the budget; {(time.time() - started) / 60:.1f} min spent so far)"
            )
        calibrated = _finish(out, run_dir, val_set, train_files, config, say)
        # without validation the epochs are ranked by the negated loss: say the loss itself
        kept = f"val accuracy {best:.4f}" if val_set is not None else f"train loss {-best:.4f}"
        took = f" in {(time.time() - started) / 60:.1f} min" if budget is not None else ""
        say(f"best model ({kept}) written to {out}{took}; curves, metrics and checkpoints in {run_dir}")
        n_classes = len(val_set.classes) if val_set is not None else 0
        weak = _weakness(best if val_set is not None else None, n_classes, calibrated, config.seed)
        if weak:
            warnings.warn(
                f"this model is weak: {'; '.join(weak)}. Train longer (--time-budget-minutes, --epochs), on more "
                "clips per class, or start from a trained model (--model default)",
                stacklevel=2,
            )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return history[-1] if history else {}
