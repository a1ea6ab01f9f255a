"""Fit a checkpoint's calibration map on its validation classes and write the checkpoint back atomically.

    python scripts/fit_calibration.py audiosiam/assets/default.pt \
        --same-domain sounds_music=sounds_environmental [--extra more_unseen_classes.json]

The validation classes are the ones the checkpoint's ``info["validation_classes"]`` lists (held out of its
training), read from the sources in ``info["sources"]``; ``--extra`` adds the classes of a data recipe
(``.json``, as ``audiosiam train`` reads) or manifest, which must not be classes the model trained on or
that any benchmark evaluates on. The validation rows of the multi-source sets
(:func:`audiosiam.data.splits.validation_sets`, each row its own domain) join them: every row by default,
``--validation-sets arabic_speakers`` only the rows named (e.g. for the ``speaker`` preset),
``--no-validation-sets`` none, ``--no-speech`` all but the speech rows (the ``sfx`` model knows nothing of
speech); the same options as ``benchmarks/calibration_transfer.py`` and ``benchmarks/decisions.py``
(:func:`audiosiam.data.splits.add_validation_arguments`). Episodes stay within one
domain, a domain being a source name unless ``--same-domain A=B`` puts source A's classes with B's. Both
rules (prototype and k-NN) get a map (:func:`audiosiam.fewshot.fitting.fit_calibration`); the weights are not
touched, which the script checks.

It also measures ``info["verification_threshold"]`` (what ``audiosiam verify`` decides "same" at, and
``find``'s typical match for a single example) as the equal-error threshold of these weights over the same
clips' pairs: a checkpoint made by averaging weights (the bundled default) otherwise carries the threshold
of the epoch it was copied from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from audiosiam.data.splits import add_validation_arguments, validation_clips
from audiosiam.evaluation import verification_metrics
from audiosiam.evaluation.embedding import embed_items
from audiosiam.fewshot.fitting import fit_calibration
from audiosiam.models import load_model
from audiosiam.models.checkpoint_file import update_checkpoint_info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint file to calibrate (rewritten in place, atomically)")
    p.add_argument("--extra", action="append", default=[], help="recipe (.json) or manifest of more unseen classes")
    p.add_argument("--episodes", type=int, default=4000, help="fitting episodes per rule (default: 4000)")
    add_validation_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    model = load_model(args.checkpoint)
    chosen = validation_clips(args, model.info, args.extra)
    items, labels, classes, domains = chosen.items, chosen.labels, chosen.classes, chosen.domains
    t0 = time.time()
    emb = embed_items(model, items, cache=args.embeddings)
    print(f"{len(items)} clips' embeddings in {time.time() - t0:.0f} s", file=sys.stderr)
    counts = {d: len({c for c, dd in zip(labels, domains, strict=True) if dd == d}) for d in sorted(set(domains))}
    print(f"{len(items)} clips of {len(classes)} classes; classes per domain: {counts}", file=sys.stderr)
    description = {"classes_by_domain": counts, "extra": [Path(e).name for e in args.extra]}
    maps = {}
    for rule in ("prototype", "knn"):
        t0 = time.time()
        cal = fit_calibration(
            emb,
            labels,
            domains=domains,
            rule=rule,
            k=5,
            episodes=args.episodes,
            seed=args.seed,
            description=description,
        )
        maps[rule] = cal.to_dict()
        print(
            f"{rule}: nll {cal.fitted_on['nll']:.4f} in {time.time() - t0:.0f} s; weights {cal.weights}",
            file=sys.stderr,
        )

    verification = verification_metrics(emb, labels)
    before = model.info.verification_threshold
    update_checkpoint_info(args.checkpoint, calibration=maps, verification_threshold=verification["eer_threshold"])
    print(
        f"verification: EER {verification['eer']:.4f} at similarity {verification['eer_threshold']:.4f} "
        f"(the checkpoint said {before})",
        file=sys.stderr,
    )
    print(f"{args.checkpoint}: calibration and verification threshold written, weights bit-identical", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
