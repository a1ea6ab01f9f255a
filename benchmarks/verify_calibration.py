#!/usr/bin/env python3
"""How far ``verify``'s P(same) can be trusted: its calibration over seeded same/different pairs.

    python benchmarks/verify_calibration.py MODEL DATA --label-column COL [--where COL=V1,V2] [--pairs 20000]

Embeds every clip of DATA (a manifest or class folder of classes the model never trained on) with MODEL
(a preset or checkpoint), draws ``--pairs`` seeded random pairs of different clips, keeps as many
different-class pairs as same-class ones, and scores each pair as ``verify`` does
(``FewShotClassifier(model).same_probability(cosine)``). Prints JSON: the expected calibration error of
the answer's probability max(P, 1 - P) (15 bins; right when P >= 0.5 says what the pair is), the Brier
score, the accuracy of P >= 0.5 and of the model's verification threshold, and the mean P(same) of same
and of different pairs.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import audiosiam
from audiosiam.data import AudioClipDataset, load_sources
from audiosiam.evaluation.calibration import expected_calibration_error
from audiosiam.evaluation.embedding import embed_dataset
from audiosiam.fewshot import FewShotClassifier


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--label-column", default="label")
    p.add_argument("--where", default=None, metavar="COL=V1,V2")
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    where = None
    if args.where:
        column, values = args.where.split("=", 1)
        where = {column: values.split(",")}
    sources, _, _ = load_sources([args.data], label_columns=[args.label_column], where=where)
    dataset = AudioClipDataset(sources[0].items(), clip_seconds=None, on_error="skip")
    model = audiosiam.load_model(args.model)
    emb, labels = embed_dataset(model, dataset)
    g = torch.Generator().manual_seed(args.seed)
    n = len(labels)
    i = torch.randint(n, (args.pairs,), generator=g)
    j = (i + torch.randint(1, n, (args.pairs,), generator=g)) % n
    same = (labels[i] == labels[j]).numpy()
    keep = min(int(same.sum()), int((~same).sum()))
    chosen = np.concatenate([np.flatnonzero(same)[:keep], np.flatnonzero(~same)[:keep]])
    sims, truth = (emb[i] * emb[j]).sum(1).numpy()[chosen], same[chosen]
    p_same = FewShotClassifier(model).same_probability(sims)
    right = (p_same >= 0.5) == truth
    ece, _ = expected_calibration_error(np.maximum(p_same, 1 - p_same), right)
    threshold = model.info.verification_threshold
    result = {
        "model": args.model,
        "data": args.data,
        "pairs": int(len(chosen)),
        "p_same_ece": ece,
        "brier": float(((p_same - truth) ** 2).mean()),
        "accuracy_p_same_0.5": float(right.mean()),
        "accuracy_threshold": None if threshold is None else float(((sims >= threshold) == truth).mean()),
        "mean_p_same_same": float(p_same[truth].mean()),
        "mean_p_same_different": float(p_same[~truth].mean()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
