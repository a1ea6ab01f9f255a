"""Pictures stay readable: the find legend beside the data, the classify map naming only what fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiosiam.plotting as plotting
from audiosiam.detection import ScoreCurve
from audiosiam.detection.curves import curve_events
from audiosiam.fewshot import FewShotClassifier, Gallery


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions make, kept open (not written) for a look."""
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda plt, fig, path: figures.append(fig) or fig.tight_layout())
    return figures


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_the_find_legend_is_beside_the_curves_not_on_them(drawn):
    t = np.arange(200) * 0.16
    scores = np.stack([0.3 + 0.6 * np.exp(-((t - 30) ** 2)), 0.2 + 0.6 * np.exp(-((t - 10) ** 2))], 1)
    curve = ScoreCurve("rec.flac", ["rooster", "dog"], t, scores, np.array([0.5, 0.5]), 1.0, 0.16, 33.0)
    plotting.plot_detection(curve, curve_events(curve, [1.0, 1.0]), "unused.png", recording=torch.zeros(16000 * 33))
    (fig,) = drawn
    renderer = fig.canvas.get_renderer()
    spectrogram, curves = fig.axes
    legend = curves.get_legend()
    assert not _overlap(legend.get_window_extent(renderer), curves.get_window_extent(renderer))
    assert legend.get_window_extent(renderer).x1 <= fig.bbox.x1 + 1  # inside the picture
    assert spectrogram.get_position().x1 == pytest.approx(curves.get_position().x1)  # time axes still aligned


def test_the_classify_map_names_prototypes_and_numbers_queries_with_a_key(drawn):
    rng = np.random.default_rng(0)
    classes = [f"class_{c}" for c in range(6)]
    support = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((18, 8))).float(), dim=1)
    clf = FewShotClassifier(None, calibration="legacy")
    clf.gallery_ = Gallery(8, "test")
    clf.add_embeddings(support, [classes[i // 3] for i in range(18)])
    queries = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((41, 8))).float(), dim=1)
    names = [f"/recordings/a_rather_long_folder/query_clip_number_{q:02d}_of_the_night.flac" for q in range(41)]
    answers = [classes[q % 6] if q % 5 else "unknown" for q in range(41)]
    plotting.plot_gallery_and_queries(clf, queries, names, answers, "unused.png")
    (fig,) = drawn
    the_map, key = fig.axes
    on_map = [text.get_text() for text in the_map.texts]
    # on the map: each class's name once and each query's number, no file names
    assert sorted(t for t in on_map if not t.isdigit()) == classes
    assert sorted(int(t) for t in on_map if t.isdigit()) == list(range(1, 42))
    entries = [text.get_text() for text in key.texts][1:]  # after the key's heading
    assert len(entries) == 41 and entries[0].endswith(" -> unknown")
    assert entries[4] == "5: query_clip_number...night.flac -> class_4"  # long names shortened in the middle
    # the key's columns do not run into one another
    renderer = fig.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in key.texts[1:]]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert not _overlap(the_map.get_window_extent(renderer), key.get_window_extent(renderer))
