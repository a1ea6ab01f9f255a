"""A time budget that holds the whole run: the finishing steps timed before training on a share of their
work, and the moment training must stop to leave them that time."""

from __future__ import annotations

import time

import torch

from ..errors import AudioLoadError, ParameterError
from ..evaluation import few_shot_accuracy, verification_metrics
from ..io import audio_duration
from ..models import EmbeddingModel
from .config import TrainConfig
from .finish import WEAK_EPISODES, WEAK_QUERIES, WEAK_SHOTS, int8_applies, weak_ways


def scaled_time(call, small: float, large: float) -> float:
    """Seconds ``call(large)`` would take: ``call(small)`` timed after an untimed warm-up on a tenth of it
    (imports, first-call set-up), scaled by ``large / small``. Counts are rounded by ``call``, at least 1."""
    call(small / 10)
    start = time.perf_counter()
    call(small)
    return (time.perf_counter() - start) * large / small


def finishing_seconds(model: EmbeddingModel, val_set, files: list[str], config: TrainConfig) -> dict[str, float]:
    """About how long the steps after the training loop take, timed now on a small share of each (their cost
    does not depend on the weights): the last validation, the calibration map (embedding the validation
    clips, fitting both rules, the weak-model check) and the int8 ranges. ``{step: seconds}``."""
    import copy

    from ..evaluation import calibration_metrics
    from ..fewshot.fitting import fit_calibration
    from ..fewshot.rules import RULES
    from ..models.int8_ranges import fit_int8_ranges

    cost = {}
    model = copy.deepcopy(model).cpu().eval()  # the finishing steps read the checkpoint on the CPU
    if val_set is not None:
        n_classes = len(val_set.classes)
        waves = [val_set.load(i) for i in range(min(len(val_set), 32))]
        embed = scaled_time(
            lambda n: model.embed(waves[: max(1, round(n))], sample_rate=val_set.sample_rate), len(waves), len(val_set)
        )
        # stand-in embeddings of the validation set's size: the episodes cost the same whatever the values
        fake = torch.randn(len(val_set), model.embedding_dim, generator=torch.Generator().manual_seed(0))
        fake, labels = torch.nn.functional.normalize(fake, dim=1), torch.as_tensor(val_set.labels)
        episodes = scaled_time(
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
                calibration_metrics(fake, labels, n_way=weak_ways(n_classes), k_shot=WEAK_SHOTS,
                                    n_query=WEAK_QUERIES, episodes=max(1, round(n)), calibration=maps)  # fmt: skip

            try:
                fitting = scaled_time(fit, min(config.calibration_episodes, 100), config.calibration_episodes)
                weak = scaled_time(check, 10, WEAK_EPISODES) if weak_ways(n_classes) >= 1 else 0.0
            except ParameterError:  # no map will be fitted: only the embedding is spent
                fitting = weak = 0.0
            cost["calibration"] = embed + fitting + weak
    if int8_applies(model):
        seconds = 0.0  # the audio fit_int8_ranges reads: each clip's first 10 s, up to 30 minutes
        for path in dict.fromkeys(files):
            try:
                seconds += min(10.0, audio_duration(path))
            except AudioLoadError:
                pass
            if seconds >= 30 * 60:
                break
        if seconds > 0:
            cost["int8 ranges"] = scaled_time(
                lambda minutes: fit_int8_ranges(model, files, minutes=minutes, seed=config.seed),
                min(1.0, seconds / 60),
                min(30.0, seconds / 60),
            )
    return cost


class Budget:
    """A time budget that holds the whole run (``time_budget_minutes``): training stops after ``training``
    seconds (of ``time.time() - t0``), leaving the setup already spent and the finishing steps their time.

    Args:
        minutes (float): the budget.
        finishing (float): seconds the steps after training take (``finishing_seconds``, with a margin).
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
