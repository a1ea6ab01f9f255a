#!/usr/bin/env python3
"""What each setting of ``unknown`` costs and buys: right answers kept against strangers rejected.

    python benchmarks/decisions.py MODEL [--k-shot 1 3 5] [--episodes 300] [--validation-sets DOMAIN ...]
        [--no-speech] [--same-domain A=B] [--json OUT]

On the validation domains of a model (:func:`audiosiam.data.splits.calibration_items`: its own validation
classes and the multi-source rows; classes it never trained on), seeded open-set episodes enrol ``n_way``
classes (5, fewer where a domain has fewer than 10 classes) of ``k`` clips and ask 3 clips of each
enrolled class and of as many classes never enrolled. Each setting decides with the shipped classifier
(:func:`audiosiam.evaluation.calibration_metrics`, leave-one-out adaptation included):

* ``no unknown`` (``--no-unknown``): always the closest class;
* ``expected_unknown`` u in 0.05, 0.1 (the default), 0.2, 0.3, 0.5: the prior share of strangers;
* ``target_false_accept`` 0.05.

Per domain and shot count: ``kept``, the share of the right answers of ``no unknown`` on enrolled classes
that the setting keeps (known accuracy over closed-set accuracy); ``rejected``, the share of strangers
answered ``unknown``; and the overall accuracy (a label when enrolled, ``unknown`` when not) when 20% and
50% of the queries are strangers, ``(1 - s) known_accuracy + s rejected``, which does not depend on the
mix the episodes asked (the decision of a query depends on the gallery, not on the other queries); and the
open-set ECE at the setting's own prior (queries weighted to that mix). The summary row is the mean over
domains.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiosiam.data.splits import add_validation_arguments, validation_clips
from audiosiam.evaluation import calibration_metrics
from audiosiam.evaluation.embedding import embed_items
from audiosiam.models import load_model

SETTINGS = (
    ("no unknown", None, None),
    ("u=0.05", 0.05, None),
    ("u=0.1", 0.1, None),
    ("u=0.2", 0.2, None),
    ("u=0.3", 0.3, None),
    ("u=0.5", 0.5, None),
    ("FA 0.05", 0.5, 0.05),
)
MIXES = (0.2, 0.5)


def domain_rows(emb, labels, *, calibration, shots, episodes: int, n_query: int = 3, seed: int = 0) -> list[dict]:
    """The rows of one domain (module docstring): one per shot count and setting."""
    classes = np.unique(labels)
    rows = []
    for k in shots:
        counts = np.array([(labels == c).sum() for c in classes])
        n_way = min(5, int((counts >= k + n_query).sum()) // 2)
        if n_way < 2:
            continue
        common = dict(n_way=n_way, k_shot=k, n_query=n_query, episodes=episodes, seed=seed, calibration=calibration)
        measured = {
            name: calibration_metrics(emb, labels, expected_unknown=prior, target_false_accept=target, **common)
            for name, prior, target in SETTINGS
            if prior is not None
        }
        closed = measured["u=0.2"]["closed_accuracy"]  # the same for every setting: only unknown moves

        def row(name, known, rejected, ece):
            mixes = {f"accuracy_at_{s:g}": (1 - s) * known + s * rejected for s in MIXES}
            kept = known / closed if closed else float("nan")
            return {"shots": k, "ways": n_way, "setting": name, "known_accuracy": known, "kept": kept,
                    "rejected": rejected, **mixes, "open_ece": ece}  # fmt: skip

        rows.append(row("no unknown", closed, 0.0, float("nan")))
        for name, r in measured.items():
            rows.append(row(name, r["known_accuracy"], 1.0 - r["false_accept_rate"], r["open_ece"]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="bundled preset name or checkpoint path")
    p.add_argument("--k-shot", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--episodes", type=int, default=300, help="episodes per domain, shot count and setting")
    add_validation_arguments(p)
    p.add_argument("--json", help="also write the rows as JSON")
    args = p.parse_args(argv)
    model = load_model(args.model)
    chosen = validation_clips(args, model.info)
    emb = embed_items(model, chosen.items, cache=args.embeddings)
    calibration = model.info.calibration
    domains = np.array(chosen.domains, dtype=object)
    labels = np.array(chosen.labels)
    rows = []
    for domain in sorted(set(domains)):
        inside = np.flatnonzero(domains == domain)
        for row in domain_rows(
            emb[inside], labels[inside], calibration=calibration, shots=args.k_shot, episodes=args.episodes
        ):
            rows.append({"domain": domain, **row})
    summary = []
    for k in args.k_shot:
        for name, *_ in SETTINGS:
            part = [r for r in rows if r["shots"] == k and r["setting"] == name]
            if part:
                keys = [key for key in part[0] if key not in ("domain", "setting", "shots", "ways")]
                mean = {key: float(np.nanmean([r[key] for r in part])) for key in keys}
                summary.append({"domain": f"mean of {len(part)}", "shots": k, "setting": name, **mean})
    print(f"{'domain':<32} {'shots':>5} {'setting':<11} {'kept':>6} {'rejected':>8} {'acc@20%':>8} {'acc@50%':>8} ECE")
    for r in rows + summary:
        print(
            f"{r['domain']:<32} {r['shots']:>5} {r['setting']:<11} {r['kept']:>6.3f} {r['rejected']:>8.3f} "
            f"{r['accuracy_at_0.2']:>8.3f} {r['accuracy_at_0.5']:>8.3f} {r['open_ece']:>6.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
