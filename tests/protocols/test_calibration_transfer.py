"""benchmarks/calibration_transfer.py: a map fitted on another domain is scored on the same episodes as one
fitted on the same domain's other classes, and a domain unlike the fitting one shows it."""

from __future__ import annotations

import numpy as np
import pytest

from audiosiam.errors import ParameterError
from benchmarks import calibration_transfer


def _clusters(rng, n_classes, spread, clips=8, dim=16):
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    emb = np.repeat(centres, clips, axis=0) + spread * rng.normal(size=(n_classes * clips, dim)) / np.sqrt(dim)
    return emb, np.repeat(np.arange(n_classes), clips)


@pytest.mark.slow
def test_a_domain_unlike_the_fitting_one_loses_calibration():
    rng = np.random.default_rng(0)
    tight, tight_labels = _clusters(rng, 8, 0.3)  # easy: every class far from the others
    loose, loose_labels = _clusters(rng, 8, 1.6)  # hard: classes overlap
    emb = np.concatenate([tight, loose])
    labels = np.concatenate([tight_labels, loose_labels + 8])
    domains = ["tight"] * len(tight) + ["loose"] * len(loose)
    rows = calibration_transfer.transfer_rows(emb, labels, domains, shots=(1, 3), fit_episodes=300, episodes=80)
    got = {(r["domain"], r["shots"], r["arm"]): r for r in rows}
    assert set(got) == {(d, k, a) for d in ("loose", "tight") for k in (1, 3) for a in ("same domain", "other domains")}
    for r in rows:
        assert r["halves"] == 2 and r["n_way"] == [2, 2]
        assert 0.0 <= r["open_ece"] <= 1.0 and 0.0 <= r["open_auroc"] <= 1.0
    for k in (1, 3):  # a map that learnt from easy classes is overconfident on hard ones
        same, other = got[("loose", k, "same domain")], got[("loose", k, "other domains")]
        assert other["open_ece"] > same["open_ece"] + 0.05
        assert other["open_accuracy_at_0.9"] < same["open_accuracy_at_0.9"]


def test_one_domain_is_refused():
    rng = np.random.default_rng(1)
    emb, labels = _clusters(rng, 6, 0.5)
    with pytest.raises(ParameterError, match="two domains"):
        calibration_transfer.transfer_rows(
            emb, labels, ["only"] * len(labels), shots=(1,), fit_episodes=50, episodes=10
        )
