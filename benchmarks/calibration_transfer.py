#!/usr/bin/env python3
"""Does a calibration map hold beyond the domain it was fitted on? Same-domain against other-domain maps.

    python benchmarks/calibration_transfer.py MODEL [--same-domain A=B] [--validation-sets DOMAIN ...]
        [--no-validation-sets] [--no-speech] [--k-shot 1 3 5] [--json OUT]

A model's probabilities come from one calibration map fitted on its validation classes
(``scripts/fit_calibration.py``). This benchmark measures how much of a map's calibration survives a
change of domain, on those validation classes alone (never a test suite), so that a change of the map
can be judged on data it was not fitted on. For every domain (a source of ``info["validation_classes"]``, or
a multi-source validation row: every row unless ``--validation-sets`` names some or ``--no-validation-sets``,
the options of ``scripts/fit_calibration.py``; ``--same-domain A=B`` joins source A to B) the classes are split in two
seeded halves, and each half is scored twice, on the same seeded open-set episodes
(:func:`audiosiam.evaluation.calibration_metrics`: the shipped classifier, leave-one-out adaptation
included), by

* ``same domain``: a map fitted on the *other half* of the domain's classes (new classes, same kind), and
* ``other domains``: a map fitted on every class of the *other domains* (the same number of episodes).

Each half's episodes enrol ``min(3, classes // 2)`` of its classes (as many again are not enrolled).
Rows give the mean over the two halves of the open-set and closed-set ECE, the share and accuracy of
answers given >= 0.9, and the open-set AUROC. The gap between the two arms is what a user's domain
costs when it is unlike the validation domains: the part of calibration that no map fitted elsewhere
can recover.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from audiosiam.data.splits import add_validation_arguments, validation_clips
from audiosiam.errors import ParameterError
from audiosiam.evaluation import calibration_metrics
from audiosiam.evaluation.embedding import embed_items
from audiosiam.fewshot.fitting import fit_calibration

ARMS = ("same domain", "other domains")
METRICS = ("open_ece", "closed_ece", "open_share_at_0.9", "open_accuracy_at_0.9", "open_auroc")


def transfer_rows(
    embeddings,
    labels,
    domains,
    *,
    shots=(1, 3, 5),
    fit_episodes: int = 1500,
    episodes: int = 300,
    n_query: int = 2,
    seed: int = 0,
) -> list[dict]:
    """The benchmark's rows (module docstring): one per domain, shot count and arm.

    Args:
        embeddings (Tensor or array): (N, D) validation embeddings.
        labels (Sequence[int]): (N,) class of each clip.
        domains (Sequence[str]): (N,) domain of each clip (one per class).
        shots (Sequence[int], optional): enrolment clips per class. Default: ``(1, 3, 5)``.
        fit_episodes (int, optional): fitting episodes of every map. Default: ``1500``.
        episodes (int, optional): scored episodes per half and shot count. Default: ``300``.
        n_query (int, optional): queries per class and episode. Default: ``2``.
        seed (int, optional): seed of the halves, the fits and the episodes. Default: ``0``.

    Returns:
        list[dict]: ``domain``, ``arm``, ``shots``, ``n_way`` (per half), ``halves`` (how many could be
        scored) and the mean of each of :data:`METRICS` over the halves.

    Raises:
        ParameterError: fewer than two domains.
    """
    emb = torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)
    labels, domains = np.asarray(labels), np.asarray(domains, dtype=object)
    names = sorted(set(domains.tolist()), key=str)
    if len(names) < 2:
        raise ParameterError(f"calibration transfer needs validation classes of two domains or more; got {names}")
    rng = np.random.default_rng(seed)
    rows = []
    for domain in names:
        classes = np.unique(labels[domains == domain])
        halves = np.array_split(classes[rng.permutation(len(classes))], 2)
        others = np.flatnonzero(domains != domain)
        other_map = fit_calibration(
            emb[others], labels[others], domains=domains[others], episodes=fit_episodes, seed=seed
        )
        scored: dict = {}
        for h, half in enumerate(halves):
            fit_idx = np.flatnonzero(np.isin(labels, halves[1 - h]))
            if len(np.unique(labels[fit_idx])) < 2:
                continue  # a domain of two or three classes: no other half to fit on
            maps = {
                ARMS[0]: fit_calibration(emb[fit_idx], labels[fit_idx], episodes=fit_episodes, seed=seed),
                ARMS[1]: other_map,
            }
            test_idx = np.flatnonzero(np.isin(labels, half))
            codes = np.unique(labels[test_idx], return_inverse=True)[1]
            counts = np.bincount(codes)
            for k in shots:
                n_way = min(3, int((counts >= k + n_query).sum()) // 2)
                if n_way < 1:
                    continue
                for arm, cal in maps.items():
                    r = calibration_metrics(
                        emb[test_idx], codes, n_way=n_way, k_shot=k, n_query=n_query, episodes=episodes,
                        calibration={cal.rule: cal.to_dict()}, seed=seed + 17 * h + k,
                    )  # fmt: skip
                    scored.setdefault((k, arm), []).append((n_way, [r[m] for m in METRICS]))
        for (k, arm), parts in sorted(scored.items(), key=lambda t: (t[0][0], ARMS.index(t[0][1]))):
            means = np.nanmean(np.array([p[1] for p in parts], dtype=np.float64), axis=0)
            row = {"domain": domain, "arm": arm, "shots": k, "n_way": [p[0] for p in parts], "halves": len(parts)}
            rows.append(row | {m: float(v) for m, v in zip(METRICS, means, strict=True)})
    return rows


def format_rows(rows: list[dict]) -> str:
    """A Markdown table of :func:`transfer_rows`' rows."""
    lines = [
        "| domain scored | shots | map fitted on | open ECE | closed ECE | share p >= 0.9 | right at p >= 0.9 "
        "| AUROC |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['domain']} | {r['shots']} | {r['arm']} | {r['open_ece']:.3f} | {r['closed_ece']:.3f} | "
            f"{r['open_share_at_0.9']:.0%} | {r['open_accuracy_at_0.9']:.1%} | {r['open_auroc']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="preset name or checkpoint")
    p.add_argument("--k-shot", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--fit-episodes", type=int, default=1500)
    p.add_argument("--episodes", type=int, default=300, help="scored episodes per half and shot count")
    add_validation_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows here as well")
    args = p.parse_args(argv)

    import audiosiam

    model = audiosiam.load_model(args.model)
    chosen = validation_clips(args, model.info)
    emb = embed_items(model, chosen.items, cache=args.embeddings)
    labels, domains = chosen.labels, chosen.domains
    rows = transfer_rows(
        emb, labels, domains, shots=args.k_shot, fit_episodes=args.fit_episodes, episodes=args.episodes,
        seed=args.seed,
    )  # fmt: skip
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "config": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
