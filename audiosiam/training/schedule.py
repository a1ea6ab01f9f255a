"""The learning rate's schedule: linear warm-up, then a cosine decay over the steps or the training time."""

from __future__ import annotations

import math
import warnings

from .budget import Budget


def lr_factor(progress: float, step: int, warmup: int, warmup_share: float | None = None) -> float:
    """The learning rate's share of its peak: linear warm-up over ``warmup`` steps (or, given ``warmup_share``,
    until ``progress`` reaches it, whichever comes first), then a cosine decay over ``progress`` 0 to 1."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    if warmup_share is not None:
        warm = max(warm, min(1.0, progress / warmup_share))
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warn_short_warmup(budget: Budget, progress: float, step: int, warmup: int) -> None:
    """Warn once when the budget's tenth ends the warm-up before ``warmup`` steps (the budget allows fewer)."""
    if budget.warned or progress < budget.WARMUP_SHARE or step + 1 >= warmup:
        return
    budget.warned = True
    warnings.warn(
        f"--warmup-steps {warmup} is more than this time budget allows (about {round(step / progress)} steps in "
        f"all at this pace): the warm-up lasted a tenth of the training time, {step} steps",
        stacklevel=3,
    )
