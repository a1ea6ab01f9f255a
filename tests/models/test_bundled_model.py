"""The bundled default model, end to end on real clips it never saw in training.

The example classes (a held-out drum kit, the held-out words "yes" and "no") and FSDD digits 5-9 are in
none of its training data (audiosiam/assets/DATA_SOURCES.md), so these tests measure generalisation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import audiosiam
from audiosiam.commands._common import read_support_folder
from audiosiam.fewshot import UNKNOWN, FewShotClassifier

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def model():
    return audiosiam.load_model()


def expected_label(query: Path) -> str:
    name = query.stem
    if name.startswith("said_"):
        return "word_" + name.split("_")[1]
    for kind in ("bass_drum", "snare", "closed_hi_hat", "crash_cymbal", "bird", "water"):
        if name.startswith(kind):
            return kind
    return UNKNOWN


def test_bundled_model_loads_offline_with_its_card(model):
    assert model.embedding_dim == 192 and model.sample_rate == 16000
    assert model.source == "default"
    info = model.info
    assert info["label_set"] and 0.0 < info["verification_threshold"] < 1.0
    assert (Path(audiosiam.__file__).parent / "assets" / "MODEL_CARD.md").is_file()
    assert sum(p.numel() for p in model.parameters()) < 3_000_000


def check_answers(answers: dict[str, str], *, stranger_unknown: bool) -> None:
    """At least 7 of the 8 queries of enrolled classes get their class; with ``stranger_unknown`` the stranger
    (a pirate's phrase, of no enrolled class) is ``unknown``.

    (Shipped 2026-12-07: all 8 right at the default ``expected_unknown=0.1``, where the pirate's phrase comes out
    ``bird`` by a small margin, P 0.40 against P(unknown) 0.37; at 0.2 it is ``unknown`` and the 8 stay right.
    The crash-cymbal query is a different cymbal from the enrolled one, and the bird and water queries were
    recorded by another package than their examples: the hardest ones.)
    """
    if stranger_unknown:
        assert answers["pirate_says_amazing.flac"] == UNKNOWN, answers
    known = {q: a for q, a in answers.items() if expected_label(Path(q)) != UNKNOWN}
    right = [q for q, a in known.items() if a == expected_label(Path(q))]
    assert len(known) == 8 and len(right) >= 7, answers


def test_examples_are_classified_by_example(model):
    support, labels = read_support_folder(EXAMPLES / "support")
    queries = sorted((EXAMPLES / "query").iterdir())
    for expected_unknown, stranger_unknown in ((0.1, False), (0.2, True)):
        clf = FewShotClassifier(model, expected_unknown=expected_unknown).fit(support, labels)
        answers = {q.name: str(label) for q, label in zip(queries, clf.predict(queries))}
        check_answers(answers, stranger_unknown=stranger_unknown)


@pytest.mark.slow
def test_quickstart_command_prints_the_table(tmp_path):
    plot = tmp_path / "plot.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiosiam",
            "classify",
            "--support",
            str(EXAMPLES / "support"),
            str(EXAMPLES / "query"),
            "--format",
            "json",
            "--plot",
            str(plot),
            "--expected-unknown",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(list((EXAMPLES / "query").iterdir()))
    check_answers({Path(r["file"]).name: r["label"] for r in rows}, stranger_unknown=True)
    assert plot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.needs_shared_data
def test_unseen_spoken_digits(model, shared_data):
    from audiosiam.data import AudioClipDataset
    from audiosiam.evaluation import few_shot_accuracy
    from audiosiam.evaluation.embedding import embed_dataset

    digits = AudioClipDataset.from_manifest(
        shared_data / "fsdd" / "manifest.csv",
        label_column="digit",
        where={"digit": ["5", "6", "7", "8", "9"]},
        group_column="speaker",
        clip_seconds=None,
    )
    emb, labels = embed_dataset(model, digits)
    one_shot = few_shot_accuracy(emb, labels, k_shot=1, episodes=1000)
    five_shot = few_shot_accuracy(emb, labels, k_shot=5, episodes=1000)
    # MFCC + cosine reaches 40.5% / 62.3% on this protocol (issue 5); a learned embedding must do better.
    assert one_shot["accuracy"] > 0.5 and five_shot["accuracy"] > 0.7


@pytest.mark.slow
@pytest.mark.needs_shared_data
def test_speaker_preset_tells_speakers_apart_where_the_default_does_not(model, shared_data):
    """The `speaker` preset answers "who is speaking", which the default is trained to ignore.

    FSDD's six speakers were never speaker labels in training (MODEL_CARD.md): 5-way 1-shot speaker
    identification across all their digits, chance 20%.
    """
    from audiosiam.data import AudioClipDataset
    from audiosiam.evaluation import few_shot_accuracy
    from audiosiam.evaluation.embedding import embed_dataset

    speakers = AudioClipDataset.from_manifest(
        shared_data / "fsdd" / "manifest.csv",
        label_column="speaker",
        where={"take": [str(t) for t in range(0, 50, 5)]},
        clip_seconds=None,
    )
    accuracy = {}
    for name, m in (("default", model), ("speaker", audiosiam.load_model("speaker"))):
        emb, labels = embed_dataset(m, speakers)
        accuracy[name] = few_shot_accuracy(emb, labels, k_shot=1, episodes=1000, seed=0)["accuracy"]
    # Measured when it shipped: speaker 53% (2,000 episodes of all 3,000 clips: 54.6%), default 28%.
    assert accuracy["speaker"] > 0.45 and accuracy["speaker"] > accuracy["default"] + 0.15, accuracy


def test_bundled_models_ship_their_calibration(model):
    import warnings

    import numpy as np

    from audiosiam.fewshot.calibration import CalibrationMap

    for preset in (model, audiosiam.load_model("speaker")):
        maps = preset.info["calibration"]
        assert {CalibrationMap.from_dict(maps[rule]).rule for rule in ("prototype", "knn")} == {"prototype", "knn"}
    support, labels = read_support_folder(EXAMPLES / "support")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a calibrated model needs no fallback warning
        clf = FewShotClassifier(model).fit(support, labels)
    queries = sorted((EXAMPLES / "query").iterdir())
    proba = clf.predict_proba(queries)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert clf.proba_columns_[-1] == UNKNOWN
    assert list(clf.proba_columns_[proba.argmax(1)]) == list(clf.predict(queries))
