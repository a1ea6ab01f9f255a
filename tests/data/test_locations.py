"""Where data lives (audiosiam.data.locations): each location follows its environment variable when set."""

from __future__ import annotations

from pathlib import Path

from audiosiam.data import locations


def test_each_location_follows_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOSIAM_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("AUDIOSIAM_TRAINING_DATA", str(tmp_path / "corpus"))
    monkeypatch.setenv("AUDIOSIAM_TEACHER_CACHE", str(tmp_path / "teacher"))
    assert locations.shared_data() == tmp_path / "shared"
    assert locations.training_data() == tmp_path / "corpus"
    assert locations.teacher_cache() == tmp_path / "teacher"


def test_the_caches_live_under_one_root_by_default(monkeypatch, tmp_path):
    for name in ("AUDIOSIAM_CACHE", "AUDIOSIAM_TRAINING_DATA", "AUDIOSIAM_TEACHER_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert locations.cache_root() == tmp_path / "audiosiam"
    assert locations.training_data() == tmp_path / "audiosiam" / "training-data"
    assert locations.teacher_cache() == tmp_path / "audiosiam" / "teacher"
    monkeypatch.setenv("AUDIOSIAM_CACHE", "~/elsewhere")
    assert locations.teacher_cache() == Path.home() / "elsewhere" / "teacher"


def test_shared_data_defaults_to_the_checkouts_neighbour(monkeypatch):
    monkeypatch.delenv("AUDIOSIAM_SHARED_DATA", raising=False)
    repo = Path(locations.__file__).resolve().parents[2]
    assert locations.shared_data() == repo.parent / "shared" / "data"
