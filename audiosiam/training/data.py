"""A run's data: the validation split (classes held out by seed, or those a checkpoint recorded), the PK
sampler's class-drawing weights, and the augmentation chain in the order a sound meets it."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch

from ..data import AudioClipDataset
from ..data.sources import load_background, source_items
from ..errors import ParameterError
from ..transforms import (
    AddNoise,
    BandLimit,
    Compose,
    MixBackground,
    MixBatch,
    RandomEqualizer,
    RandomGain,
    Reverb,
    SpecAugment,
    SpeedPerturb,
    TimeShift,
)
from .config import SAMPLE_RATE, TrainConfig


def split_classes(
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


def classes_of(checkpoint: str, dataset: AudioClipDataset) -> set[str]:
    """The validation classes recorded in ``checkpoint`` (``info.validation_classes``) that this data has."""
    from ..models import load_model

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


def class_weights(
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


def augmentation(config: TrainConfig, sample_rate: int, background: list[torch.Tensor]):
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


def build_datasets(config: TrainConfig, sources, unlabelled, background, *, rank: int, say, progress: bool):
    """``(train_set, val_set or None, held-out class names, batch mixing, SpecAugment)``, every clip read once."""
    augment, mix_batch, spec_augment = augmentation(
        config, SAMPLE_RATE, load_background(background, SAMPLE_RATE) if background else []
    )
    full = AudioClipDataset(
        source_items(sources, unlabelled, copies=config.clips_per_class),
        sample_rate=SAMPLE_RATE,
        clip_seconds=config.clip_seconds,
        crop="random",
        augment=augment,
        seed=config.seed + 7919 * rank,
        on_error="skip",
    )
    say(full.summary())
    if config.val_classes_of:
        held = classes_of(config.val_classes_of, full)
    else:
        held = split_classes(full, config.val_classes, config.seed, sources=config.val_sources)
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
