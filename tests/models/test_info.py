"""The typed record of a checkpoint's ``info`` (audiosiam/models/info.py)."""

from __future__ import annotations

import math

import pytest
import torch

from audiosiam.models import EmbeddingModel, load_checkpoint
from audiosiam.models.info import ModelInfo, model_info


def test_absent_entries_read_as_none_or_empty():
    info = ModelInfo()
    assert info.calibration is None and info.int8_ranges is None and info.verification_threshold is None
    assert info.label_set == [] and info.validation_classes == [] and info.sources == []
    assert info.unlabelled == [] and info.background == [] and info.metrics == {}
    assert info.audiosiam_version is None and info.training_minutes is None and info.attribution is None
    assert ModelInfo({"calibration": {}, "int8_ranges": {}}).calibration is None  # empty is absent


def test_views_read_the_keys_the_files_hold():
    stored = {
        "calibration": {"prototype": {"weights": [1.0]}},
        "int8_ranges": {"input": [-1.0, 2.0]},
        "label_set": ["dog", "bell"],
        "validation_classes": ["owl"],
        "sources": [{"path": "x.csv"}],
        "metrics": {"epoch": 3, "verification_threshold": 0.4},
        "training_minutes": 12.5,
    }
    info = ModelInfo(stored)
    assert info.calibration == stored["calibration"] and info.int8_ranges == stored["int8_ranges"]
    assert info.label_set == ["dog", "bell"] and info.validation_classes == ["owl"]
    assert info.sources == [{"path": "x.csv"}] and info.training_minutes == 12.5
    assert info.verification_threshold == 0.4  # older checkpoints kept it in their metrics
    assert ModelInfo({**stored, "verification_threshold": 0.7}).verification_threshold == 0.7  # the top wins
    assert info["label_set"] == ["dog", "bell"]  # still the dict the file holds
    info.label_set.append("changed")  # a view hands out copies: the record is not changed through it
    assert info["label_set"] == ["dog", "bell"]


@pytest.mark.parametrize("value", [math.nan, 5.0, "x", True])
def test_a_damaged_threshold_is_named(value):
    with pytest.raises(ValueError, match="not a similarity"):
        ModelInfo({"verification_threshold": value}).verification_threshold


def test_a_model_keeps_a_record_whatever_is_assigned_and_a_checkpoint_round_trips(tmp_path):
    model = EmbeddingModel(info={"label_set": ["a"]})
    assert isinstance(model.info, ModelInfo) and model.info.label_set == ["a"]
    model.info = {"validation_classes": ["b"], "verification_threshold": 0.25}
    assert isinstance(model.info, ModelInfo) and model.info.validation_classes == ["b"]
    path = model.save(tmp_path / "m.pt", label_set=["a", "c"])
    stored = torch.load(path, weights_only=True)["info"]
    assert type(stored) is dict  # the file holds plain values
    loaded = load_checkpoint(path)
    assert isinstance(loaded.info, ModelInfo)
    assert loaded.info.label_set == ["a", "c"] and loaded.info.verification_threshold == 0.25


def test_model_info_of_anything():
    class Plain:
        info = {"attribution": "someone"}

    assert model_info(Plain()).attribution == "someone"
    assert model_info(object()) == {}
    model = EmbeddingModel()
    assert model_info(model) is model.info
