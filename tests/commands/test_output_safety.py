"""What the commands write is safe to open: names that a spreadsheet would run as formulas (``=HYPERLINK(...)``)
arrive as text in every CSV and tab-separated export, and names holding newlines or terminal escape codes
cannot break a table's layout or reach the terminal.

Every writer is covered: ``write_rows`` (classify, verify, find), embed's index, find's Raven and Audacity
tables.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from cli_runner import cli

from audiosiam.commands._common import write_rows
from audiosiam.files import spreadsheet_safe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# class names an attacker may choose (a folder name), each a formula to a spreadsheet
FORMULAS = ['=HYPERLINK("http:evil","click")', "+x", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


def csv_cells(text: str, delimiter: str = ",") -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text), delimiter=delimiter) for cell in row]


def assert_no_formula(cells: list[str]) -> None:
    live = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(c)]
    assert not live, f"cells a spreadsheet would run: {live}"


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_only_strings_that_start_a_formula_are_neutralised():
    for text in FORMULAS:
        assert spreadsheet_safe(text) == "'" + text
    for value in ("dog", "1+1", " =x", "a=b", -0.25, -3, None, True):
        assert spreadsheet_safe(value) == value
    out = io.StringIO()
    write_rows([{"label": "-2+3", "score": -0.5, "file": "=1+1.wav"}], "csv", out)
    assert out.getvalue().splitlines() == ["label,score,file", "'-2+3,-0.5,'=1+1.wav"]  # the number stays one
    out = io.StringIO()
    write_rows([{"label": "-2+3", "score": -0.5}], "json", out)  # JSON is data, not a spreadsheet
    assert json.loads(out.getvalue()) == [{"label": "-2+3", "score": -0.5}]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A support folder whose class names are formulas, and a query file named as one."""
    root = tmp_path_factory.mktemp("hostile")
    sources = ["snare", "bird", "water", "word_no", "word_yes", "crash_cymbal"]
    for name, source in zip(FORMULAS, sources):
        shutil.copytree(EXAMPLES / "support" / source, root / "support" / name)
    shutil.copy(EXAMPLES / "query" / "snare_sn_02.flac", root / "=1+1.flac")
    return root


def test_classify_and_verify_csv_hold_no_formula(checkpoint, hostile, monkeypatch):
    monkeypatch.chdir(hostile)  # the query given as "=1+1.flac": its file cell starts with "="
    code, out, err = cli("classify", "--support", "support", "=1+1.flac", "--model", checkpoint, "--format", "csv")
    assert code == 0, err
    cells = csv_cells(out)
    assert "'=1+1.flac" in cells and any(c.startswith("'") and c[1:] in FORMULAS for c in cells[1:])
    assert_no_formula(cells)
    code, out, err = cli("verify", "=1+1.flac", "=1+1.flac", "--model", checkpoint, "--format", "csv")
    assert code == 0, err
    assert csv_cells(out).count("'=1+1.flac") == 2
    assert_no_formula(csv_cells(out))


def test_embed_index_holds_no_formula(checkpoint, hostile, monkeypatch, tmp_path):
    monkeypatch.chdir(hostile)
    code, _, err = cli("embed", "=1+1.flac", "--model", checkpoint, "--out", tmp_path / "e.npy")
    assert code == 0, err
    assert csv_cells((tmp_path / "e.csv").read_text()) == ["row", "path", "0", "'=1+1.flac"]


@pytest.mark.parametrize("fmt", ["csv", "raven", "audacity"])
def test_find_exports_hold_no_formula(checkpoint, hostile, monkeypatch, tmp_path, fmt):
    monkeypatch.chdir(hostile)
    example = EXAMPLES / "query" / "snare_sn_02.flac"  # the recording itself: found, whatever the model
    args = ["find", "--example", example, "--label", "=1+1", "=1+1.flac", "--threshold", "0", "--format", fmt]
    code, out, err = cli(*args, "--model", checkpoint, *(["--out", tmp_path] if fmt != "csv" else []))
    assert code == 0, err
    if fmt == "csv":
        cells = csv_cells(out)
    else:
        (table,) = tmp_path.iterdir()
        cells = csv_cells(table.read_text(), delimiter="\t")
    assert "'=1+1" in cells
    assert_no_formula(cells)


# a class and a file named to break a table's lines and to drive the terminal (clear screen, red)
CONTROL = ["two\nlines", "evil\x1b[2J\x1b[31mred"]


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    for name, source in zip(CONTROL, ["snare", "bird"]):
        shutil.copytree(EXAMPLES / "support" / source, root / "support" / name)
    shutil.copy(EXAMPLES / "query" / "snare_sn_02.flac", root / "q\n\x1b[31m.flac")
    (root / "bad\x1b[2J.wav").write_bytes(b"not audio")
    return root


def assert_tame(text: str, lines: int) -> None:
    assert "\x1b" not in text and "\r" not in text, repr(text)
    assert text.count("\n") == lines, repr(text)


def test_tables_and_messages_escape_control_characters_csv_and_json_keep_them(checkpoint, controlled, monkeypatch):
    monkeypatch.chdir(controlled)
    query, bad = "q\n\x1b[31m.flac", "bad\x1b[2J.wav"
    code, out, err = cli("classify", "--support", "support", query, bad, "--model", checkpoint)
    assert code == 1  # one query could not be read
    assert_tame(out, 2)  # the header and one row
    assert "q\\n\\x1b[31m.flac" in out and any(f"{c!r}"[1:-1] in out for c in CONTROL)
    assert "bad\\x1b[2J.wav: " in err and "\x1b" not in err
    code, out, _ = cli("classify", "--support", "support", query, "--model", checkpoint, "--format", "json")
    assert json.loads(out)[0]["file"] == query  # data formats carry the name as it is
    code, out, _ = cli("classify", "--support", "support", query, "--model", checkpoint, "--format", "csv")
    assert next(csv.DictReader(io.StringIO(out)))["file"] == query
    code, out, err = cli("verify", query, query, "--model", checkpoint)
    assert code == 0, err
    assert_tame(out, 3)
    code, out, err = cli("enroll", "support", "--out", "g.asg", "--model", checkpoint)
    assert code == 0, err
    assert_tame(out, 2)
    code, out, err = cli("verify", bad, query, "--model", checkpoint)
    assert code == 1 and "bad\\x1b[2J.wav" in err
    assert_tame(err, 1)
