"""The command line end to end, on the real example clips, with a small untrained checkpoint.

(Accuracy of the bundled model is tested in tests/models/test_bundled_model.py; here the plumbing is: every
command's output, formats, error reports and exit codes.)
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import cli

import audiosiam
from audiosiam.cli import _available_commands, main
from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
from audiosiam.ops import has_ops
from audiosiam.transforms import LogMelSpectrogram

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_subcommand_teaches_with_help():
    names = [name for name, _ in _available_commands()]
    assert names == ["classify", "find", "verify", "enroll", "embed", "export", "train", "evaluate", "bench", "info"]
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            cli(name, "--help")
        assert exit_info.value.code == 0
    code, out, _ = cli()
    assert code == 2


def test_help_text_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--support" in text and "unknown" in text


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_classify_examples_in_every_format(checkpoint, fmt, tmp_path):
    plot = tmp_path / "why.png"
    code, out, err = cli(
        "classify",
        "--support",
        EXAMPLES / "support",
        EXAMPLES / "query",
        "--model",
        checkpoint,
        "--format",
        fmt,
        "--plot",
        plot,
    )
    assert code == 0, err
    queries = sorted(p.name for p in (EXAMPLES / "query").iterdir())
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
    else:
        lines = out.strip().splitlines()
        assert lines[0].split()[:3] == ["file", "label", "prob"]
        rows = [{"file": line.split()[0]} for line in lines[1:]]
    assert sorted(Path(r["file"]).name for r in rows) == queries
    assert plot.is_file() and plot.stat().st_size > 10_000


def test_bad_query_files_are_reported_and_the_rest_classified(checkpoint, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    good = EXAMPLES / "query" / "snare_sn_02.flac"
    code, out, err = cli(
        "classify",
        "--support",
        EXAMPLES / "support",
        bad,
        good,
        tmp_path / "missing.flac",
        "--model",
        checkpoint,
        "--format",
        "json",
    )
    assert code == 1
    assert "broken.wav" in err and "missing.flac" in err and "not a readable audio file" in err
    assert [Path(r["file"]).name for r in json.loads(out)] == ["snare_sn_02.flac"]


def test_support_folder_problems_are_explained(checkpoint, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(EXAMPLES / "support" / "snare", one / "snare")
    code, _, err = cli("classify", "--support", one, EXAMPLES / "query", "--model", checkpoint)
    assert code == 1 and "needs at least 2 classes" in err and "only class 'snare'" in err
    shutil.copytree(EXAMPLES / "support" / "bass_drum", one / "bass_drum")
    (one / "empty_class").mkdir()
    code, _, err = cli("classify", "--support", one, EXAMPLES / "query", "--model", checkpoint)
    assert code == 0 and "audiosiam classify: warning: " in err and "empty_class: class folder holds no audio" in err


def test_enroll_then_classify_from_gallery(checkpoint, tmp_path):
    gallery = tmp_path / "examples.asg"
    code, out, err = cli("enroll", EXAMPLES / "support", "--out", gallery, "--model", checkpoint)
    assert code == 0 and gallery.is_file() and "24 clips in 8 classes" in out
    direct = cli(
        "classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--model", checkpoint, "--format", "json"
    )[1]
    from_gallery = cli("classify", "--gallery", gallery, EXAMPLES / "query", "--model", checkpoint, "--format", "json")[
        1
    ]
    assert json.loads(direct) == json.loads(from_gallery)


def test_gallery_from_another_model_is_refused(checkpoint, tmp_path):
    gallery = tmp_path / "g.asg"
    cli("enroll", EXAMPLES / "support", "--out", gallery, "--model", checkpoint)
    other = EmbeddingModel(LogMelSpectrogram(), ResNetEncoder(EncoderConfig(channels=(8, 8, 16, 16), embedding_dim=24)))
    other_path = tmp_path / "other.pt"
    other.eval().save(other_path)
    code, _, err = cli("classify", "--gallery", gallery, EXAMPLES / "query", "--model", other_path)
    assert code == 1 and "different model" in err


def test_verify_and_embed(checkpoint, tmp_path):
    a, b = EXAMPLES / "support" / "snare" / "sn_06.flac", EXAMPLES / "support" / "snare" / "sn_07.flac"
    code, out, _ = cli("verify", a, a, "--model", checkpoint, "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["decision"] == "same" and result["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert result["threshold"] == 0.5  # the checkpoint's calibrated threshold
    code, out, _ = cli("verify", a, b, "--model", checkpoint, "--threshold", "1.0")
    assert code == 0 and out.startswith("different")
    npy = tmp_path / "emb.npy"
    code, _, _ = cli("embed", EXAMPLES / "support", "--out", npy, "--model", checkpoint)
    emb = np.load(npy)
    with open(tmp_path / "emb.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert code == 0 and emb.shape == (24, 24) and len(rows) == 24
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_evaluate_with_held_out_query_group(checkpoint, tmp_path):
    manifest = tmp_path / "m.csv"
    clips = sorted((EXAMPLES / "support").glob("*/*.flac"))
    manifest.write_text(
        "path,sound,speaker\n" + "".join(f"{p},{p.parent.name},g{i % 3}\n" for i, p in enumerate(clips))
    )
    out_json = tmp_path / "r.json"
    code, out, _ = cli(
        "evaluate",
        checkpoint,
        manifest,
        "--label-column",
        "sound",
        "--group-column",
        "speaker",
        "--query-group",
        "g2",
        "--k-shot",
        "1",
        "--n-query",
        "1",
        "--episodes",
        "40",
        "--json",
        out_json,
    )
    result = json.loads(out_json.read_text())
    assert code == 0 and "5-way 1-shot" in out and result["clips"] == 24
    assert 0.0 <= result["5-way 1-shot"]["accuracy"] <= 1.0 and result["5-way 1-shot"]["episodes"] == 40
    code, _, err = cli("evaluate", checkpoint, manifest, "--label-column", "sound", "--query-group", "g2")
    assert code != 0 and "--query-group needs --group-column" in err
    code, _, err = cli(
        "evaluate",
        checkpoint,
        manifest,
        "--label-column",
        "sound",
        "--group-column",
        "speaker",
        "--query-group",
        "nobody",
    )
    assert code != 0 and "['nobody'] not among" in err


def test_info_reports_build_and_models(checkpoint):
    from audiosiam.ops import build_info

    code, out, _ = cli("info", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["torch"] == torch.__version__
    assert report["source"] == str(Path(audiosiam.__file__).resolve().parent)  # which clone runs
    assert report["compiled_core"] == build_info()
    assert report["presets"][0]["model"] == "default" and report["presets"][0]["embedding_dim"] > 0
    assert report["presets"][0]["calibration_map"] and report["presets"][0]["int8_long_recordings"]
    code, out, _ = cli("info", "--model", checkpoint)
    assert code == 0 and "24-d embeddings" in out and "compiled core" in out
    assert "long recordings: float32 (no int8 ranges)" in out  # a test checkpoint, written without them
    code, _, err = cli("info", "--model", "no_such_model.pt")
    assert code == 1 and "no_such_model.pt" in err


@pytest.mark.skipif(not has_ops(), reason="bench times the compiled kernels, which are not built here")
def test_bench_checks_then_times_every_kernel():
    code, out, err = cli("bench", "--size", "quick", "--min-time", "0.01", "--threads", "1", "--format", "json")
    report = json.loads(out)
    cases = [r["case"] for r in report["results"]]
    assert code == 0 and report["threads"] == 1
    assert cases[:3] == ["pairwise euclidean fwd+bwd", "pairwise l1 fwd+bwd", "knn euclidean"]
    # the fused loss against a naive loop and the fair baselines: vectorised PyTorch and pytorch-metric-learning
    loss = [r["baseline"] for r in report["results"] if r["case"] == "triplet batch-hard fwd+bwd"]
    assert loss == ["naive loop over anchors", "vectorised PyTorch (cdist + masked mining)", "pytorch-metric-learning"]
    for r in report["results"]:
        assert r["audiosiam_ms"] > 0 and r["baseline_ms"] > 0 and r["max_error"] <= 1e-4
        assert r["speedup"] == pytest.approx(r["baseline_ms"] / r["audiosiam_ms"])
    assert "knn euclidean ..." in err  # progress on stderr, results alone on stdout


def test_bench_refuses_to_time_a_wrong_kernel(monkeypatch):
    import audiosiam.bench as bench

    if not has_ops():
        pytest.skip("compiled kernels not built")
    real = bench._cases

    def broken(*args):
        for case in real(*args):
            yield case[:4] + ((lambda: 1.0),)  # an error of 1.0 against the reference

    monkeypatch.setattr(bench, "_cases", broken)
    with pytest.raises(AssertionError, match="not timing a wrong result"):
        bench.run_benchmarks(size="quick", min_run_time=0.01)
    # nor against a wrong baseline
    monkeypatch.setattr(bench, "vectorised_batch_hard", lambda x, y, margin=0.2: bench.naive_batch_hard(x, y) + 0.01)
    monkeypatch.setattr(bench, "_cases", lambda *a: (c for c in real(*a) if c[0].startswith("triplet")))
    with pytest.raises(AssertionError, match="the baseline vectorised PyTorch .* differs"):
        bench.run_benchmarks(size="quick", min_run_time=0.01)


def test_top_level_help_imports_neither_torch_nor_a_command_parser():
    # `audiosiam --help` lists the commands from their HELP lines alone; torch is not imported
    import subprocess
    import sys

    code = (
        "import sys\nfrom audiosiam.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO TORCH") and "classify" in out and "evaluate" in out


def test_json_output_is_valid_json_when_a_number_is_missing():
    import io as _io

    from audiosiam.commands._common import write_rows

    buffer = _io.StringIO()
    write_rows([{"file": "a.wav", "score": float("nan")}, {"file": "b.wav", "score": 0.5}], "json", buffer)
    assert "NaN" not in buffer.getvalue() and json.loads(buffer.getvalue())[0]["score"] is None


def test_one_skipped_file_is_counted_too(checkpoint, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    good = EXAMPLES / "query" / "snare_sn_02.flac"
    runs = [
        ("1 clip skipped", ["classify", "--support", EXAMPLES / "support", bad, good]),
        ("1 clip skipped", ["classify", "--support", EXAMPLES / "support", bad, good, "--segments"]),
        ("1 clip skipped", ["embed", bad, good, "--out", tmp_path / "e.npy"]),
        ("1 recording skipped", ["find", "--example", good, bad, good]),
    ]
    for count, args in runs:
        code, _, err = cli(*args, "--model", checkpoint)
        assert code == 1 and err.count("broken.wav") == 1, err
        assert f"audiosiam {args[0]}: {count}\n" in err, err
    support = tmp_path / "support"
    shutil.copytree(EXAMPLES / "support", support)
    (support / "snare" / "broken.wav").write_text("not audio")
    code, _, err = cli("enroll", support, "--out", tmp_path / "g.asg", "--model", checkpoint)
    assert code == 0 and "audiosiam enroll: 1 example skipped\n" in err, err


def test_bad_example_clips_are_reported_and_the_others_enrolled(checkpoint, tmp_path):
    support = tmp_path / "support"
    shutil.copytree(EXAMPLES / "support", support)
    (support / "snare" / "broken.wav").write_text("not audio")
    (support / "bass_drum" / "empty.wav").write_bytes(b"")
    code, out, err = cli(
        "classify",
        "--support",
        support,
        EXAMPLES / "query" / "snare_sn_02.flac",
        "--model",
        checkpoint,
        "--format",
        "json",
    )
    assert code == 0 and json.loads(out)[0]["file"].endswith("snare_sn_02.flac")
    assert "broken.wav" in err and "empty.wav" in err and "2 examples skipped" in err
    assert err.count("broken.wav") == 1  # the path once, not "skipped X: X: ..."
    code, _, err = cli("enroll", support, "--out", tmp_path / "g.asg", "--model", checkpoint)
    assert code == 0 and "24 clips in 8 classes" in _  # the 24 good ones
    code, _, err = cli("enroll", support, "--out", tmp_path / "g2.asg", "--model", checkpoint, "--strict")
    assert code == 1 and "empty.wav: is an empty file" in err and not (tmp_path / "g2.asg").exists()


def test_one_vocabulary_on_every_command():
    # --model/--device where a model is used, --format where results are printed, --no-progress where
    # work is long; every option says its default
    from audiosiam.cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    commands = {a.dest: a for a in parser._subparsers._group_actions}["command"].choices
    uses_model = {"classify", "verify", "enroll", "embed", "evaluate"}
    for name in SUBCOMMANDS:
        options = {s for a in commands[name]._actions for s in a.option_strings}
        if name in uses_model:
            assert {"--model", "--device", "--format"} <= options, name
        if name in uses_model - {"verify"} | {"train"}:
            assert "--no-progress" in options, name
    train_options = {s for a in commands["train"]._actions for s in a.option_strings}
    assert {"--model", "--classes-per-batch", "--clips-per-class"} <= train_options
    for action in commands["train"]._actions:
        if (
            action.help not in (None, "==SUPPRESS==")
            and action.option_strings
            and action.dest not in ("help", "resume")
        ):
            assert "default" in action.help or action.required, action.option_strings


def test_old_spellings_still_work_with_a_warning(tmp_path):
    import argparse

    from audiosiam.cli import build_parser

    args = build_parser("train").parse_args(
        ["train", "d/", "--out", "m.pt", "--init", "default", "--k", "3", "--p", "8"]
    )
    assert (args.init, args.clips_per_class, args.classes_per_batch) == ("default", 3, 8)
    args = build_parser("train").parse_args(
        ["train", "d/", "--out", "m.pt", "--model", "default", "--clips-per-class", "3"]
    )
    assert (args.init, args.clips_per_class) == ("default", 3)
    assert isinstance(args, argparse.Namespace)


def test_a_fine_tune_takes_its_models_architecture_unless_told_otherwise(tmp_path):
    from audiosiam.cli import build_parser
    from audiosiam.commands.train import architecture
    from audiosiam.models import EmbeddingModel, EncoderConfig, ResNetEncoder
    from audiosiam.transforms import LogMelSpectrogram

    deeper = tmp_path / "deeper.pt"
    EmbeddingModel(
        LogMelSpectrogram(16000, n_mels=32),
        ResNetEncoder(EncoderConfig(n_mels=32, channels=(8, 8, 16, 16), blocks=(1, 2, 2), embedding_dim=24)),
    ).save(deeper)
    parse = build_parser("train").parse_args
    assert architecture(parse(["train", "d/", "--out", "m.pt", "--model", str(deeper)])) == {
        "n_mels": 32,
        "channels": [8, 8, 16, 16],
        "blocks": [1, 2, 2],
        "embedding_dim": 24,
    }
    told = architecture(parse(["train", "d/", "--out", "m.pt", "--model", str(deeper), "--embedding-dim", "48"]))
    assert told["embedding_dim"] == 48 and told["blocks"] == [1, 2, 2]  # what is given wins (and is refused later)
    fresh = architecture(parse(["train", "d/", "--out", "m.pt", "--blocks", "2,2,2"]))
    assert fresh == {"n_mels": 64, "channels": [32, 48, 96, 160], "blocks": [2, 2, 2], "embedding_dim": 192}


def test_concurrent_additions_to_one_gallery_are_both_kept(checkpoint, tmp_path):
    """Real processes: two `enroll --add-to G --out G` at once, G spelled two ways. Without one lock per file one
    update is lost."""
    import subprocess
    import sys

    support = tmp_path / "support"
    classes = sorted(p.name for p in (EXAMPLES / "support").iterdir() if p.is_dir())
    for name in classes[:2]:
        shutil.copytree(EXAMPLES / "support" / name, support / "base" / name)
    for side, names in (("a", classes[2:5]), ("b", classes[5:8])):
        for name in names:
            shutil.copytree(EXAMPLES / "support" / name, support / side / name)
    gallery = tmp_path / "shared.asg"
    assert cli("enroll", support / "base", "--out", gallery, "--model", checkpoint)[0] == 0
    link = tmp_path / "link.asg"
    link.symlink_to(gallery)
    # the same gallery spelled two ways (no suffix; through a link): one lock all the same
    spelled = {"a": str(tmp_path / "shared"), "b": str(link)}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "audiosiam", "enroll", "--add-to", spelled[side], "--out", spelled[side]]
            + [str(support / side), "--model", checkpoint, "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for side in ("a", "b")
    ]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    code, out, _ = cli(
        "enroll",
        support / "base",
        "--add-to",
        gallery,
        "--out",
        tmp_path / "check.asg",
        "--model",
        checkpoint,
        "--format",
        "json",
    )
    assert code == 0
    assert set(json.loads(out)["classes"]) == set(classes)  # base + a + b: nothing lost
    assert link.is_symlink()  # updated through the link, not replaced by a copy


def test_threshold_options_take_similarities_only(capsys):
    for command in (["classify", "--support", "s", "q"], ["verify", "a", "b"]):
        for bad in ("1.5", "nan", "-3", "high"):
            with pytest.raises(SystemExit) as info:
                main([*command, "--threshold", bad])
            assert info.value.code == 2
            assert "argument --threshold" in capsys.readouterr().err


BAD_OPTION_VALUES = [  # (command line, the option argparse names): each a usage error, exit 2, before any work
    (["classify", "--support", "s", "q", "-k", "0"], "-k"),
    (["classify", "--support", "s", "q", "-k", "1000000"], "-k"),
    (["classify", "--support", "s", "q", "-k", "2.5"], "-k"),
    (["classify", "--support", "s", "q", "--target-false-accept", "1.5"], "--target-false-accept"),
    (["classify", "--support", "s", "q", "--segments", "--segment-hop", "0"], "--segment-hop"),
    (["enroll", "s", "--out", "g", "-k", "-1"], "-k"),
    (["embed", "q", "--out", "e", "--batch-size", "0"], "--batch-size"),
    (["find", "--example", "e", "r", "--hop", "0"], "--hop"),
    (["find", "--example", "e", "r", "--window", "nan"], "--window"),
    (["find", "--example", "e", "r", "--locate", "-1"], "--locate"),
    (["find", "--example", "e", "r", "--background-quantile", "0"], "--background-quantile"),
    (["evaluate", "d", "-k", "0"], "-k"),
    (["evaluate", "d", "--n-way", "0"], "--n-way"),
    (["train", "d", "--out", "m.pt", "--epochs", "0"], "--epochs"),
    (["train", "d", "--out", "m.pt", "--lr", "-1"], "--lr"),
    (["train", "d", "--out", "m.pt", "--blocks", "a"], "--blocks"),
    (["train", "d", "--out", "m.pt", "--channels", "8,,16"], "--channels"),
    (["classify", "--support", "s", "q", "--segments", "--segment-hop", "1e9"], "--segment-hop"),
    (["find", "--example", "e", "r", "--hop", "1e9"], "--hop"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTION_VALUES, ids=[" ".join(a[-2:]) for a, _ in BAD_OPTION_VALUES])
def test_an_option_value_wrong_by_itself_is_a_usage_error(argv, option, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_evaluate_open_set_follows_k_shot_and_names_short_classes_before_any_work(checkpoint, tmp_path, monkeypatch):
    from audiosiam.evaluation import embedding

    args = ["--k-shot", "1", "2", "--n-query", "1", "--open-set", "--episodes", "20", "--format", "json"]
    code, out, err = cli("evaluate", EXAMPLES / "support", "--model", checkpoint, "--no-progress", *args)
    assert code == 0, err
    results = json.loads(out)
    assert code == 0 and results["open-set 1-shot"]["k_shot"] == 1 and results["open-set 2-shot"]["k_shot"] == 2
    monkeypatch.setattr(embedding, "embed_dataset", lambda *a, **k: pytest.fail("embedded before checking"))
    code, _, err = cli("evaluate", EXAMPLES / "support", "--model", checkpoint, "--k-shot", "5", "--open-set")
    assert code == 1 and "--open-set" in err and "bird (3)" in err and "lower --k-shot" in err


def test_csv_output_keeps_its_header_when_every_query_failed(checkpoint, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    code, out, err = cli("classify", "--support", EXAMPLES / "support", bad, "--model", checkpoint, "--format", "csv")
    assert code == 1 and "bad.wav" in err
    assert out == "file,label,prob,closest,p_closest,p_unknown,score,runner_up,p_runner_up,runner_up_score\n"


def test_warnings_are_one_line_without_source(checkpoint, tmp_path):
    support = tmp_path / "one"
    for name in ("snare", "bird"):  # one clip per class: unknown rejection cannot be calibrated (a warning)
        (support / name).mkdir(parents=True)
        shutil.copy(sorted((EXAMPLES / "support" / name).iterdir())[0], support / name)
    code, _, err = cli("classify", "--support", support, EXAMPLES / "query" / "snare_sn_02.flac", "--model", checkpoint)
    warning_lines = [line for line in err.splitlines() if "warning" in line]
    assert code == 0 and warning_lines, err
    assert all(line.startswith("audiosiam classify: warning: ") for line in warning_lines), err
    assert ".py:" not in err  # no file:line of the library


def test_unusable_output_paths_are_named_for_every_command(checkpoint, tmp_path, monkeypatch):
    from audiosiam.commands import _common

    monkeypatch.setattr(_common, "load_model_from_args", lambda args: pytest.fail("work began before the check"))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    support, query = EXAMPLES / "support", EXAMPLES / "query"
    for args in (
        ("enroll", support, "--out", folder),
        ("embed", support, "--out", folder),
        ("evaluate", support, "--n-query", "1", "--episodes", "5", "--json", folder),
        ("evaluate", support, "--n-query", "1", "--episodes", "5", "--plot", folder),
        ("classify", "--support", support, query, "--plot", folder),
        ("classify", "--support", support, query, "--plot", tmp_path / "picture.docx"),
        ("evaluate", support, "--n-query", "1", "--episodes", "5", "--plot", tmp_path / "picture.docx"),
    ):
        code, _, err = cli(*args, "--model", checkpoint, "--no-progress")
        assert code == 1 and f"error: {args[-1]}" in err, (args, err)
        assert "Traceback" not in err
    assert list(folder.iterdir()) == []  # nothing half-written inside


def test_evaluate_calibration_reports_per_shot_and_draws_reliability(checkpoint, tmp_path):
    picture = tmp_path / "reliability.png"
    args = ["--n-way", "4", "--n-query", "1", "--k-shot", "1", "2", "--episodes", "10", "--format", "json"]
    code, out, err = cli(
        "evaluate",
        EXAMPLES / "support",
        "--model",
        checkpoint,
        "--no-progress",
        *args,
        "--calibration",
        "--calibration-episodes",
        "20",
        "--reliability-plot",
        picture,
    )
    assert code == 0, err
    results = json.loads(out)
    for shot in (1, 2):
        r = results[f"calibration {shot}-shot"]
        assert r["k_shot"] == shot and 0 <= r["closed_ece"] <= 1 and 0 <= r["false_accept_rate"] <= 1
        assert all(len(row) == 3 for row in r["closed_reliability"])
    assert picture.stat().st_size > 10_000
    code, _, err = cli("evaluate", EXAMPLES / "support", "--model", checkpoint, "--reliability-plot", picture)
    assert code == 1 and "add --calibration" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(checkpoint):
    clip = EXAMPLES / "support" / "snare" / "sn_06.flac"
    code, _, err = cli("verify", clip, clip, "--model", checkpoint, "--device", "cuda")
    assert code == 1 and err.strip() == (
        "audiosiam verify: error: --device='cuda': no CUDA GPU is visible to torch here; use cpu"
    )


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The tiny checkpoint with a calibration map fitted on synthetic clusters (the map is dimension-free)."""
    from audiosiam.fewshot.fitting import fit_calibration

    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(24, 16, generator=g), dim=1)
    labels = torch.arange(24).repeat_interleave(12)
    emb = centres[labels] + 0.3 * torch.randn(len(labels), 16, generator=g)
    maps = {rule: fit_calibration(emb, labels, rule=rule, episodes=150).to_dict() for rule in ("prototype", "knn")}
    torch.manual_seed(0)
    model = EmbeddingModel(LogMelSpectrogram(), ResNetEncoder(EncoderConfig(channels=(8, 8, 16, 16), embedding_dim=24)))
    path = tmp_path_factory.mktemp("model") / "tiny_calibrated.pt"
    model.eval().save(path, verification_threshold=0.5, calibration=maps)
    return str(path)


@pytest.mark.slow
def test_verify_reports_the_probability_of_same(calibrated, checkpoint):
    a, b = EXAMPLES / "support" / "snare" / "sn_06.flac", sorted((EXAMPLES / "support" / "bird").iterdir())[0]
    code, out, _ = cli("verify", a, a, "--model", calibrated, "--format", "json")
    same = json.loads(out)
    code2, out2, _ = cli("verify", a, b, "--model", calibrated, "--format", "json")
    other = json.loads(out2)
    assert code == code2 == 0 and 0.5 < same["p_same"] < 1 and 0 <= other["p_same"] < same["p_same"]
    code, out, _ = cli("verify", a, b, "--model", calibrated)
    assert code == 0 and "P(same)" in out.splitlines()[0]
    code, out, _ = cli("verify", a, a, "--model", checkpoint, "--format", "json")  # no map: no probability
    assert code == 0 and json.loads(out)["p_same"] is None


def test_verify_decides_by_the_probability_and_prints_where_it_crosses_one_half(calibrated):
    from audiosiam.fewshot.verification import verification_threshold
    from audiosiam.models import load_model

    threshold = verification_threshold(load_model(calibrated))
    clips = sorted((EXAMPLES / "support").rglob("*.flac"))[:8]
    for a, b in zip(clips, clips[1:]):
        code, out, _ = cli("verify", a, b, "--model", calibrated, "--format", "json")
        row = json.loads(out)
        assert code == 0 and row["threshold"] == pytest.approx(threshold)
        assert (row["decision"] == "same") == (row["p_same"] >= 0.5) == (row["similarity"] >= threshold)
    code, out, _ = cli("info", "--model", calibrated, "--format", "json")
    assert json.loads(out)["model"]["verification_threshold"] == pytest.approx(threshold)


def test_verify_pairs_reads_a_trial_list_and_carries_on_past_bad_files(calibrated, tmp_path):
    clips = sorted((EXAMPLES / "support").rglob("*.flac"))
    (tmp_path / "bad.wav").write_text("not audio")
    trials = tmp_path / "trials.csv"
    lines = ["a,b,label"] + [f"{clips[i]},{clips[i + 1]},x{i}" for i in range(4)] + [f"bad.wav,{clips[0]},y"]
    trials.write_text("\n".join(lines) + "\n")
    code, out, err = cli("verify", "--pairs", trials, "--model", calibrated, "--format", "json")
    rows = json.loads(out)
    assert code == 1 and "bad.wav" in err and "1 pairs left out" in err
    assert [r["label"] for r in rows] == ["x0", "x1", "x2", "x3"]
    for r in rows:  # the same answers as one pair at a time
        _, one, _ = cli("verify", r["a"], r["b"], "--model", calibrated, "--format", "json")
        single = json.loads(one)
        assert single["decision"] == r["decision"] and single["similarity"] == pytest.approx(r["similarity"], abs=1e-5)
    trials.write_text("left,right\nx,y\n")
    code, _, err = cli("verify", "--pairs", trials, "--model", calibrated)
    assert code == 1 and "columns a and b" in err
    code, _, err = cli("verify", "--model", calibrated)
    assert code == 1 and "--pairs" in err


def test_classify_rows_show_the_closest_class_and_unknown_also_when_rejected(calibrated):
    code, out, _ = cli(
        "classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--model", calibrated,
        "--format", "json", "--all-probabilities", "--expected-unknown", "0.9",
    )  # fmt: skip
    rows = json.loads(out)
    classes = sorted(p.name for p in (EXAMPLES / "support").iterdir())
    assert code == 0 and any(r["label"] == "unknown" for r in rows)
    for row in rows:
        probs = {c: row[f"p:{c}"] for c in classes}
        assert sum(probs.values()) + row["p_unknown"] == pytest.approx(1.0)
        assert row["closest"] == max(probs, key=probs.get) and row["p_closest"] == pytest.approx(probs[row["closest"]])
        assert row["prob"] == pytest.approx(row["p_unknown"] if row["label"] == "unknown" else row["p_closest"])
    with pytest.raises(SystemExit) as refused:
        cli("classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--expected-unknown", "1")
    assert refused.value.code == 2


def test_classify_prints_the_probability_of_its_answer(calibrated):
    code, out, err = cli(
        "classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--model", calibrated, "--format", "json"
    )
    rows = json.loads(out)
    assert code == 0 and rows and "no calibration map" not in err
    for row in rows:
        assert 0 <= row["prob"] <= 1 and 0 <= row["p_unknown"] <= 1
        if row["label"] == "unknown":
            assert row["prob"] == row["p_unknown"]
        else:
            assert row["label"] == row["closest"] and row["prob"] >= row["p_unknown"]
    code, out, _ = cli(
        "classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--model", calibrated,
        "--target-false-accept", "0.001", "--format", "json",
    )  # fmt: skip
    strict = json.loads(out)
    assert code == 0 and sum(r["label"] == "unknown" for r in strict) >= sum(r["label"] == "unknown" for r in rows)
    with pytest.raises(SystemExit) as info:  # a value wrong by itself: a usage error (README, exit codes)
        cli("classify", "--support", EXAMPLES / "support", EXAMPLES / "query", "--target-false-accept", "2")
    assert info.value.code == 2


def test_evaluate_calibration_measures_the_map_and_the_earlier_rule(calibrated):
    args = ["--n-way", "4", "--n-query", "1", "--k-shot", "1", "2", "--episodes", "5", "--format", "json"]
    args += ["--calibration", "--calibration-episodes", "15", "--no-progress"]
    code, out, err = cli("evaluate", EXAMPLES / "support", "--model", calibrated, *args, "--target-false-accept", "0.1")
    assert code == 0, err
    for shot in (1, 2):
        r = json.loads(out)[f"calibration {shot}-shot"]
        assert r["rejection"] == "calibration map, target false-accept rate 0.1"
        assert 0 <= r["open_ece"] <= 1 and 0 <= r["open_brier"] <= 2 and 0 <= r["similarity_auroc"] <= 1
    code, out, err = cli("evaluate", EXAMPLES / "support", "--model", calibrated, *args, "--legacy-calibration")
    assert code == 0 and json.loads(out)["calibration 2-shot"]["rejection"].startswith("earlier rule"), err
    code, _, err = cli("evaluate", EXAMPLES / "support", "--model", calibrated, "--legacy-calibration")
    assert code == 1 and "add --calibration" in err


def test_enroll_adds_a_folder_of_one_new_class_to_a_gallery(checkpoint, tmp_path):
    gallery = tmp_path / "g.asg"
    code, _, err = cli("enroll", EXAMPLES / "support", "--out", gallery, "--model", checkpoint)
    assert code == 0, err
    new = tmp_path / "new"
    shutil.copytree(EXAMPLES / "support" / "snare", new / "snare_again")
    args = ("--add-to", gallery, "--out", gallery, "--model", checkpoint, "--format", "json")
    code, out, err = cli("enroll", new, *args)
    assert code == 0, err
    assert "snare_again" in json.loads(out)["classes"] and len(json.loads(out)["classes"]) == 9
    code, _, err = cli("enroll", new, "--out", tmp_path / "alone.asg", "--model", checkpoint)  # a new gallery: two
    assert code == 1 and "at least 2 classes" in err


def test_a_query_folder_without_audio_is_reported_and_the_other_queries_run(checkpoint, tmp_path):
    empty = tmp_path / "dir.wav"
    empty.mkdir()
    good = EXAMPLES / "query" / "snare_sn_02.flac"
    code, out, err = cli(
        "classify", "--support", EXAMPLES / "support", empty, good, "--model", checkpoint, "--format", "csv"
    )
    assert code == 1 and "dir.wav" in err
    assert [Path(r["file"]).name for r in csv.DictReader(io.StringIO(out))] == [good.name]


def test_unwritable_output_places_are_named_before_the_work(checkpoint, tmp_path, make_read_only, monkeypatch):
    support, clip = EXAMPLES / "support", EXAMPLES / "query" / "snare_sn_02.flac"
    ro = tmp_path / "ro"
    ro.mkdir()
    assert cli("enroll", support, "--out", ro / "G.asg", "--model", checkpoint)[0] == 0
    make_read_only(ro)
    a_file = tmp_path / "file.wav"
    a_file.write_bytes(b"")
    find = ("find", "--example", clip, clip, "--format", "raven")
    for args, named, why in (
        (("enroll", support, "--add-to", ro / "G.asg", "--out", ro / "G.asg"), ro / "G.asg", "read-only"),
        (("enroll", support, "--out", ro / "H.asg"), ro / "H.asg", "read-only"),
        (("embed", clip, "--out", ro / "e.npy"), ro / "e.npy", "read-only"),
        (("embed", clip, "--out", a_file / "sub.npy"), a_file / "sub.npy", f"{a_file} is a file, not a folder"),
        ((*find, "--out", ro / "tracks"), ro / "tracks", "read-only"),
        ((*find, "--out", a_file / "sub"), a_file / "sub", f"{a_file} is a file, not a folder"),
        ((*find, "--plot", ro / "pictures"), ro / "pictures", "read-only"),
        (("train", support, "--out", ro / "t.pt", "--epochs", "1"), ro / "t.pt", "read-only"),
        (("train", support, "--out", a_file / "t.pt", "--epochs", "1"), a_file / "t.pt", "is a file, not a folder"),
    ):
        extra = () if args[0] == "train" else ("--model", checkpoint)
        code, _, err = cli(*args, *extra, "--no-progress")
        assert code == 1 and f"error: {named}: cannot be" in err and why in err, (args, err)
        assert "Traceback" not in err


def test_a_folder_that_cannot_be_made_names_the_file_in_the_way(tmp_path):
    from audiosiam.errors import ParameterError
    from audiosiam.paths import make_folder

    a_file = tmp_path / "file.wav"
    a_file.write_bytes(b"")
    with pytest.raises(ParameterError, match=rf"^{a_file}/sub: cannot be made \({a_file} is a file, not a folder\)"):
        make_folder(a_file / "sub")
    assert make_folder(tmp_path / "a" / "b").is_dir()


def test_an_unforeseen_system_error_is_one_named_line(checkpoint, monkeypatch, tmp_path):
    import errno

    from audiosiam.commands import embed

    def refused(args):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "somewhere"))

    monkeypatch.setattr(embed, "run", refused)
    code, _, err = cli("embed", EXAMPLES / "query", "--out", tmp_path / "e.npy")
    assert code == 1 and err.startswith(f"audiosiam embed: error: {tmp_path / 'somewhere'}: Permission denied"), err


def test_evaluate_shows_its_progress_over_reading_embedding_and_episodes(checkpoint, monkeypatch):
    from audiosiam.commands import _common

    # on a terminal: a bar over the clips read, the batches embedded and each measure's episodes
    monkeypatch.setattr(_common, "show_progress", lambda args: not args.no_progress)  # as if stderr were one
    args = ["--n-way", "4", "--n-query", "1", "--k-shot", "1", "--episodes", "10", "--calibration"]
    args += ["--calibration-episodes", "5"]
    code, out, err = cli("evaluate", EXAMPLES / "support", "--model", checkpoint, *args)
    assert code == 0, err
    for bar in ("reading clips", "embedding", "4-way 1-shot episodes", "calibration 1-shot episodes"):
        assert bar in err, bar
    quiet = cli("evaluate", EXAMPLES / "support", "--model", checkpoint, "--no-progress", *args)
    assert quiet[1] == out and "episodes" not in quiet[2]  # the same answers; --no-progress: no bar
