"""Which clips of the multi-source sets train and which validate (audiosiam.data.splits)."""

from __future__ import annotations

import pytest

from audiosiam.data.locations import shared_data
from audiosiam.data.sources import source_items
from audiosiam.data.splits import arabic_split, calibration_items, training_sources, validation_sets
from audiosiam.errors import ParameterError

pytestmark = pytest.mark.needs_shared_data


def test_arabic_keywords_and_speakers_split_without_overlap():
    split = arabic_split(shared_data())
    assert len(split["validation_keywords"]) == len(split["train_keywords"]) == 20
    assert len(split["validation_speakers"]) == 10 and len(split["train_speakers"]) == 20
    assert not set(split["validation_keywords"]) & set(split["train_keywords"])
    assert not set(split["validation_speakers"]) & set(split["train_speakers"])


@pytest.mark.parametrize("speaker", [False, True])
def test_no_validation_clip_is_ever_trained_on(speaker):
    trained = {it.path for it in source_items(training_sources(speaker=speaker))}
    validated = {it.path for row in validation_sets() for it in row.items}
    assert trained and validated and not trained & validated


def test_calibration_items_take_the_rows_asked_for():
    items = calibration_items({}, domains=["arabic_speakers"])
    assert {it.source for it in items} == {"arabic_speakers"}
    assert all(it.label.startswith("arabic_speakers/") for it in items)
    everything = calibration_items({}, speech=False)
    assert "arabic_keywords" not in {it.source for it in everything} and "game_foley" in {
        it.source for it in everything
    }
    with pytest.raises(ParameterError, match="no validation row"):
        calibration_items({}, domains=["klingon"])
