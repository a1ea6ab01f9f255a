"""`--report` pages of classify and find: the same answers as the table, players that play, hostile names
shown as text; then the pages in a real headless Chromium (tests/browser.py), skipped where it cannot be
installed."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosiam.cli import main
from audiosiam.report.audio import EMBED_SECONDS, AudioSources

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RATE = 16000

# Names a page must show as text: markup, an event handler, quotes and ampersands, unicode.
HOSTILE_LABELS = ["<img src=x onerror=window.pwned=1>", "a&b\"c'", "ünïcødé 🎵"]
HOSTILE_LABEL_FOR_FIND = '<script>alert("x")</script>'


class Page(HTMLParser):
    """The parts of a report the tests read: tables (by id) of rows of cells, media, scripts."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[dict]] = {}
        self.audio: list[dict] = []
        self.buttons: list[dict] = []
        self.scripts = 0
        self._rows = self._row = self._cell = None
        self._body = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(attrs.get("id") or f"table-{len(self.tables)}", [])
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body and self._rows is not None:
            self._row = {"attrs": attrs, "cells": []}
            self._rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = {"attrs": attrs, "text": ""}
            self._row["cells"].append(self._cell)
        elif tag == "audio":
            self.audio.append(attrs)
        elif tag == "button":
            self.buttons.append(attrs)
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._rows = None
        elif tag == "tbody":
            self._body = False
        elif tag == "tr":
            self._row = None
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def values(self, table: str) -> list[dict]:
        """The command's columns of each row: ``{column: text}``."""
        return [
            {c["attrs"]["data-column"]: c["text"].strip() for c in row["cells"] if "data-column" in c["attrs"]}
            for row in self.tables[table]
        ]


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    return code, out.getvalue()


def parse_table(text: str) -> list[dict]:
    """The command's aligned table back into rows of text, by the header's column positions."""
    lines = text.rstrip("\n").split("\n")
    header = lines[0]
    names = header.split()
    starts = [header.index(name) if i == 0 else header.index(" " + name) + 1 for i, name in enumerate(names)]
    bounds = list(zip(starts, starts[1:] + [None]))
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, bounds)} for line in lines[1:]]


def _noise(seconds: float, seed: int) -> torch.Tensor:
    walk = np.cumsum(np.random.default_rng(seed).standard_normal(int(seconds * RATE)))
    walk -= np.convolve(walk, np.ones(400) / 400, mode="same")
    return torch.from_numpy((walk * 0.01 / walk.std()).astype(np.float32))


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def examples_report(tmp_path_factory):
    """classify on the bundled examples: the table on stdout and the page."""
    path = tmp_path_factory.mktemp("classify") / "answers.html"
    code, out = run_cli(
        ["classify", "--support", str(EXAMPLES / "support"), str(EXAMPLES / "query"), "--report", str(path)]
    )
    assert code == 0
    return out, path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Example and query clips copied to hostile names and class folders."""
    root = tmp_path_factory.mktemp("hostile")
    support = root / "support"
    for label, source in zip(HOSTILE_LABELS, ("snare", "word_yes", "bird")):
        shutil.copytree(EXAMPLES / "support" / source, support / label)
    queries = root / "queries"
    names = {
        "<script>alert(1)</script>.flac": "snare_sn_02",  # a folder "<script>alert(1)<" and "script>.flac"
        "a&b\"c'.flac": "said_yes_837a0f64",
        "ünïcødé 🎵 #1?.flac": "bird_wesnoth_birds2",
        "pirate.flac": "pirate_says_amazing",
    }
    for name, source in names.items():
        (queries / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "query" / f"{source}.flac", queries / name)
    return support, queries


@pytest.fixture(scope="module")
def hostile_report(hostile):
    support, queries = hostile
    path = support.parent / "report" / "classify.html"
    code, out = run_cli(
        ["classify", "--support", str(support), str(queries), "--format", "json", "--report", str(path)]
        + ["--expected-unknown", "0.5"]  # half strangers expected: the pirate's clip is unknown (the filter below)
    )
    rows = json.loads(out)
    assert code == 0 and any(r["label"] == "unknown" for r in rows)
    return rows, path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """35 s (longer than a clip embedded in a page) with a snare three times among other sounds, at a hostile
    path."""
    from audiosiam import load_audio
    from audiosiam.detection.soundscapes import make_soundscape, random_placements

    queries = {p.stem: load_audio(p) for p in sorted((EXAMPLES / "query").glob("*.flac")) if "water" not in p.stem}
    snare = queries.pop("snare_sn_02")
    clips = [(snare, "snare")] * 3 + [(w, "other") for w in queries.values()]
    wave, _ = make_soundscape(_noise(35, 0), random_placements(clips, 35, snr_db=(6, 12), seed=1))
    path = tmp_path_factory.mktemp("find") / "rec <&'\" ü>" / "scene #1.wav"
    path.parent.mkdir()
    sf.write(path, wave.numpy(), RATE)
    return path


@pytest.fixture(scope="module")
def find_report(scene):
    path = scene.parent.parent / "pages" / "find.html"
    examples = [arg for p in sorted((EXAMPLES / "support" / "snare").glob("*.flac")) for arg in ("--example", str(p))]
    code, out = run_cli(["find", *examples, "--label", HOSTILE_LABEL_FOR_FIND, str(scene), "--report", str(path)])
    assert code == 0
    return out, path


# ---------------------------------------------------------------------------------------------- content
def test_classify_report_rows_are_the_table(examples_report):
    table, path = examples_report
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    expected = parse_table(table)
    assert len(expected) == len(list((EXAMPLES / "query").glob("*.flac")))
    assert page.values("answers-table") == expected
    rows = page.tables["answers-table"]
    assert [r["attrs"]["data-label"] for r in rows] == [e["label"] for e in expected]
    assert [float(r["attrs"]["data-number"]) for r in rows] == pytest.approx(
        [float(e["prob"]) for e in expected], abs=5e-4
    )
    # every query has a player holding its clip, and up to three nearest enrolled clips that play
    queries = [a for a in page.audio if a["id"].startswith("query-")]
    assert len(queries) == len(expected) and all(a["src"].startswith("data:audio/ogg;base64,") for a in queries)
    ids = {a["id"] for a in page.audio}
    plays = [b["data-audio"] for b in page.buttons if "data-audio" in b]
    assert plays and set(plays) <= ids
    for row in rows:
        near = [c for c in row["cells"] if "nearest" in c["text"] or "▶" in c["text"]]
        assert near and near[0]["text"].count("▶") == 3
    assert "embedding map" in html and html.count('class="spectrogram"') == len(expected)
    assert page.scripts == 1 and "Content-Security-Policy" in html
    enrolled = {d.name: str(len(list(d.glob("*.flac")))) for d in (EXAMPLES / "support").iterdir()}
    assert {r["cells"][0]["text"]: r["cells"][1]["text"] for r in page.tables["classes-table"]} == enrolled


def test_classify_report_embeds_each_clip_exactly(examples_report):
    _, path = examples_report
    page = Page(path.read_text(encoding="utf-8"))
    files = sorted((EXAMPLES / "query").glob("*.flac"))
    for audio, file in zip([a for a in page.audio if a["id"].startswith("query-")], files):
        data = base64.b64decode(audio["src"].split(",", 1)[1])
        decoded, rate = sf.read(io.BytesIO(data))
        assert len(decoded) / rate == pytest.approx(sf.info(file).duration, abs=0.01)


def test_hostile_names_are_text(hostile_report):
    rows, path = hostile_report
    html = path.read_text(encoding="utf-8")
    for raw in ("<script>alert(1)</script>", "<script>alert(1)<", "<img src=x", "a&b\"c'"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=window.pwned=1&gt;" in html
    page = Page(html)
    assert page.scripts == 1
    shown = page.values("answers-table")
    assert [r["file"] for r in shown] == [r["file"] for r in rows]  # parsed back: the exact names
    assert [r["label"] for r in shown] == [r["label"] for r in rows]
    assert {r["cells"][0]["text"] for r in page.tables["classes-table"]} == set(HOSTILE_LABELS)
    titles = {b.get("title") for b in page.buttons}
    assert any(t and "<img src=x onerror=window.pwned=1>" in t for t in titles)  # enrolled clips by path
    options = [o for o in re.findall(r"<option value=\"([^\"]*)\"", html)]
    assert "&lt;img src=x onerror=window.pwned=1&gt;" in options and "a&amp;b&#34;c&#39;" in options


def test_find_report_rows_are_the_table(find_report, scene):
    table, path = find_report
    page = Page(path.read_text(encoding="utf-8"))
    expected = parse_table(table)
    assert len(expected) >= 3 and {e["label"] for e in expected} == {HOSTILE_LABEL_FOR_FIND}
    assert page.values("events-0") == expected
    events = [a for a in page.audio if a["id"].startswith("event-")]
    assert len(events) == len(expected)
    for audio, row in zip(events, expected):  # the event with half a second either side, inside the page
        start, end = float(row["start"]), float(row["end"])
        assert float(audio["data-start"]) == pytest.approx(max(0.0, start - 0.5), abs=1e-3)
        assert float(audio["data-end"]) == pytest.approx(min(35.0, end + 0.5), abs=1e-3)
        decoded, rate = sf.read(io.BytesIO(base64.b64decode(audio["src"].split(",", 1)[1])))
        assert len(decoded) / rate == pytest.approx(float(audio["data-end"]) - float(audio["data-start"]), abs=0.01)
    # the recording, longer than a clip that is embedded, is linked by its relative path, quoted for a URL
    recording = next(a for a in page.audio if a["id"] == "recording-0-audio")
    assert recording["data-embedded"] == "no" and "#" not in recording["src"].replace("%23", "")
    assert (path.parent / urllib.parse.unquote(recording["src"])).resolve() == scene.resolve()
    html = path.read_text(encoding="utf-8")
    assert HOSTILE_LABEL_FOR_FIND not in html and page.scripts == 1
    examples = {b["data-audio"] for b in page.buttons if b.get("data-audio", "").startswith("example-")}
    assert examples == {"example-0", "example-1", "example-2"}


def test_segments_report_plays_each_stretch(tmp_path):
    path = tmp_path / "segments.html"
    recording = EXAMPLES / "query" / "water_supertuxkart_river_loop.flac"
    args = ["classify", "--support", str(EXAMPLES / "support"), str(recording), "--segments", "--segment-hop", "1"]
    code, out = run_cli([*args, "--report", str(path)])
    assert code == 0
    page = Page(path.read_text(encoding="utf-8"))
    expected = parse_table(out)
    assert page.values("answers-table") == expected and len(expected) == 2
    starts = [float(a["data-start"]) for a in page.audio if a["id"].startswith("query-")]
    assert starts == [float(e["start"]) for e in expected]


def test_report_to_a_folder_is_refused_before_the_work(tmp_path, capsys):
    code = main(
        ["classify", "--support", str(EXAMPLES / "support"), str(EXAMPLES / "query"), "--report", str(tmp_path)]
    )
    assert code == 1 and "is a folder" in capsys.readouterr().err


def test_size_rule(tmp_path):
    short, long = tmp_path / "short.wav", tmp_path / "sub dir" / "long #1?.wav"
    long.parent.mkdir()
    sf.write(short, np.zeros(RATE, dtype=np.float32) + 0.1, RATE)
    sf.write(long, np.zeros(int((EMBED_SECONDS + 5) * RATE), dtype=np.float32) + 0.1, RATE)
    sources = AudioSources(tmp_path / "out" / "report.html")
    assert sources.clip(short).embedded
    linked = sources.clip(long)
    assert not linked.embedded and linked.src == "../sub%20dir/long%20%231%3F.wav"
    stretch = sources.stretch(long, 10.0, 11.0)
    assert stretch.embedded and (stretch.start, stretch.end) == (9.5, 11.5)
    whole = sources.stretch(long, 0.0, EMBED_SECONDS + 1)  # a stretch too long: linked with a media fragment
    assert not whole.embedded and whole.src.endswith(f"#t=0.000,{EMBED_SECONDS + 1.5:.3f}")
    spent = AudioSources(tmp_path / "report.html", budget_bytes=1)
    assert spent.clip(short).embedded and not spent.clip(short).embedded  # the budget is spent after one
    assert sources.clip(tmp_path / "missing.wav") is None


# ---------------------------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    from browser import Browser, find_chromium

    command, why = find_chromium()
    if command is None:
        pytest.skip(f"no headless Chromium for the browser test: {why}")
    with Browser(command) as b:
        yield b


MEDIA_READY = """
Promise.all([...document.querySelectorAll('audio')].map(a => a.readyState >= 1 ? a.duration :
  new Promise(done => { a.addEventListener('loadedmetadata', () => done(a.duration));
                        a.addEventListener('error', () => done(-1)); a.load(); })))
"""

VISIBLE_COLUMN = """
[...document.querySelectorAll('#{table} tbody tr')].filter(r => !r.hidden)
  .map(r => r.querySelector('td[data-column="{column}"]').textContent.trim())
"""


@pytest.mark.slow
def test_classify_report_in_chromium(browser, hostile_report, examples_report, tmp_path):
    rows, path = hostile_report
    browser.console.clear()
    browser.open(path)
    assert browser.errors() == []
    assert browser.evaluate("document.querySelectorAll('#answers-table tbody tr').length") == len(rows)
    durations = browser.evaluate(MEDIA_READY, await_promise=True)
    assert durations and all(d > 0 for d in durations)  # every src resolves to audio with a length
    assert browser.evaluate("typeof window.pwned") == "undefined"
    text = browser.evaluate("document.body.innerText")
    assert all(label in text for label in HOSTILE_LABELS) and "<script>alert(1)</script>" in text
    # sorting by the probability, both ways, by the column's button
    click = "document.querySelector('#answers-table th:nth-child({n}) button.sort').click()"
    column = list(rows[0]).index("prob") + 2  # after the player's column, 1-based
    browser.evaluate(click.format(n=column))
    ascending = [float(v) for v in browser.evaluate(VISIBLE_COLUMN.format(table="answers-table", column="prob"))]
    assert ascending == sorted(ascending) and len(ascending) == len(rows)
    browser.evaluate(click.format(n=column))
    assert [float(v) for v in browser.evaluate(VISIBLE_COLUMN.format(table="answers-table", column="prob"))] == sorted(
        ascending, reverse=True
    )
    # filters: only unknown, then only answers below a probability
    form = "document.querySelector('form.filters')"
    browser.evaluate(f"{form}.elements.label.value = 'unknown'; {form}.dispatchEvent(new Event('input'))")
    shown = browser.evaluate(VISIBLE_COLUMN.format(table="answers-table", column="label"))
    assert shown == ["unknown"] * sum(r["label"] == "unknown" for r in rows)
    browser.evaluate(
        f"{form}.elements.label.value = ''; {form}.elements.below.value = '0.7';"
        f"{form}.dispatchEvent(new Event('input'))"
    )
    low = browser.evaluate(VISIBLE_COLUMN.format(table="answers-table", column="prob"))
    assert sorted(float(v) for v in low) == sorted(round(r["prob"], 3) for r in rows if r["prob"] < 0.7)
    # keyboard: "/" goes to the filter box
    browser.send("Input.dispatchKeyEvent", session=True, type="keyDown", key="/", text="/")
    assert browser.evaluate("document.activeElement.name") == "text"
    # a play button plays its enrolled clip
    browser.evaluate("document.querySelector('button.play').click()")
    assert browser.evaluate(
        "new Promise(done => setTimeout(() => { const b = document.querySelector('button.play');"
        " done([document.getElementById(b.dataset.audio).paused, b.getAttribute('aria-pressed')]); }, 300))",
        await_promise=True,
    ) == [False, "true"]
    assert browser.errors() == []
    shot = browser.screenshot(tmp_path / "classify.png")
    assert shot.stat().st_size > 10_000
    # the bundled examples too (what the README's picture shows)
    browser.open(examples_report[1])
    assert browser.errors() == [] and all(d > 0 for d in browser.evaluate(MEDIA_READY, await_promise=True))
    browser.screenshot(tmp_path / "examples.png")


@pytest.mark.slow
def test_find_report_in_chromium(browser, find_report, tmp_path):
    table, path = find_report
    browser.console.clear()
    browser.open(path)
    assert browser.errors() == []
    expected = parse_table(table)
    assert browser.evaluate(VISIBLE_COLUMN.format(table="events-0", column="start")) == [e["start"] for e in expected]
    durations = dict(
        zip(
            browser.evaluate("[...document.querySelectorAll('audio')].map(a => a.id)"),
            browser.evaluate(MEDIA_READY, await_promise=True),
        )
    )
    assert durations["recording-0-audio"] == pytest.approx(35.0, abs=0.01)  # linked by relative path: it resolves
    for n, row in enumerate(expected):  # each event's player holds the event and its context
        start, end = float(row["start"]), float(row["end"])
        assert durations[f"event-0-{n}"] == pytest.approx(min(35.0, end + 0.5) - max(0.0, start - 0.5), abs=0.02)
    text = browser.evaluate("document.body.innerText")
    assert HOSTILE_LABEL_FOR_FIND in text and "rec <&'\" ü>" in text
    browser.evaluate("document.querySelector('#events-0 th:nth-child(6) button.sort').click()")  # score
    scores = [float(v) for v in browser.evaluate(VISIBLE_COLUMN.format(table="events-0", column="score"))]
    assert scores == sorted(scores)
    assert browser.errors() == []
    assert browser.screenshot(tmp_path / "find.png", full_page=True).stat().st_size > 10_000


def test_browser_helper_sees_console_errors(browser, tmp_path):
    """The check above means something: a page that throws is seen throwing."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><p>x</p><script>console.error('seen'); undefinedFunction();</script>")
    browser.console.clear()
    browser.open(page, settle=0.2)
    errors = browser.errors()
    assert any("seen" in e for e in errors) and any("undefinedFunction" in e for e in errors)
    assert os.path.exists(page)
