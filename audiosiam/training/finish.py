"""The steps after training: the best epoch's checkpoint gets its calibration map and int8 ranges and is
written to ``out`` once, complete; and the closing check that says when a model is weak."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data import AudioClipDataset
from ..errors import ParameterError
from ..evaluation.embedding import embed_dataset
from ..files import write_output
from ..models import EmbeddingModel, load_checkpoint
from .config import TrainConfig


def calibrate_checkpoint(path, val_set: AudioClipDataset, episodes: int, seed: int, say):
    """Fit the calibration maps of the checkpoint at ``path`` (both rules) on the validation classes, each
    source its own domain, and write it back atomically (the weights are those read). Returns
    ``(embeddings, labels, maps)`` of the validation clips, or ``None`` when no map could be fitted."""
    from ..fewshot.fitting import fit_calibration
    from ..fewshot.rules import RULES

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


def int8_applies(model: EmbeddingModel) -> bool:
    from ..models.quantized import int8_available

    return int8_available() and model.frontend.normalize == "utterance"


def measure_int8_ranges(path, files: list[str], seed: int, say) -> None:
    """Measure the int8 ranges of the checkpoint at ``path`` on its training clips (long recordings then
    run its trunk in 8-bit integers: ``models/quantized.py``) and write it back atomically."""
    from ..models.int8_ranges import fit_int8_ranges
    from ..models.quantized import RANGES_KEY

    model = load_checkpoint(path)
    if not int8_applies(model):
        say("no int8 ranges: long recordings will run this model in float32")
        return
    model.save(path, **{RANGES_KEY: fit_int8_ranges(model, files, seed=seed)})
    say("int8 ranges measured on the training clips (for long recordings)")


# the weak-model check of the closing summary: episodes of the calibrated classifier on the validation clips
WEAK_EPISODES, WEAK_SHOTS, WEAK_QUERIES = 100, 3, 2


WEAK_MARGIN = 0.1  # an accuracy less than this above chance is "near chance"


WEAK_UNKNOWN = 0.9  # answering unknown to this share of clips of enrolled classes is "everything unknown"


def weak_ways(n_classes: int) -> int:
    return min(5, n_classes // 2)


def finish_run(out: Path, run_dir: Path, val_set, files: list[str], config: TrainConfig, say):
    """The steps after training: the best checkpoint's calibration map and int8 ranges, measured on a copy in
    the run folder that then replaces ``out`` in one step, so ``out`` appears once, complete (a kill on
    the way leaves the previous ``out``, or none). Returns ``calibrate_checkpoint``'s answer."""
    final = run_dir / "final.pt"
    write_output(final, lambda tmp: shutil.copyfile(run_dir / "best.pt", tmp))
    calibrated = None
    if val_set is not None and config.calibration_episodes > 0:
        calibrated = calibrate_checkpoint(final, val_set, config.calibration_episodes, config.seed, say)
    measure_int8_ranges(final, files, config.seed, say)
    write_output(out, lambda tmp: shutil.copyfile(final, tmp))
    final.unlink(missing_ok=True)
    return calibrated


def weakness(best_accuracy: float | None, n_classes: int, calibrated, seed: int) -> list[str]:
    """Why the written model is weak, in words (empty when it is not): a held-out accuracy near chance, or a
    classifier that answers ``unknown`` to nearly every clip of a class it enrolled."""
    from ..evaluation import calibration_metrics
    from ..fewshot.classifier import EXPECTED_UNKNOWN

    reasons = []
    ways = min(5, n_classes)
    if best_accuracy is not None and ways >= 2 and best_accuracy < 1 / ways + WEAK_MARGIN:
        reasons.append(f"its held-out {ways}-way 1-shot accuracy, {best_accuracy:.2f}, is near chance ({1 / ways:.2f})")
    if calibrated is not None and weak_ways(n_classes) >= 1:
        emb, labels, maps = calibrated
        try:
            rate = calibration_metrics(
                emb,
                labels,
                n_way=weak_ways(n_classes),
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
