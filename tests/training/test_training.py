"""Training end to end on tiny generated data: outputs, resume, reproducibility, label-free, contrastive."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from audiosiam.data import DataSource, load_sources
from audiosiam.errors import ParameterError
from audiosiam.fewshot.gallery import model_fingerprint
from audiosiam.models import load_checkpoint
from audiosiam.models.quantized import int8_available, trunk_points
from audiosiam.models.sliding import SlidingEmbedder
from audiosiam.training import TrainConfig, plot_curves, train

from audio_fixtures import write

TINY = dict(
    channels=[8, 8, 16, 16],
    blocks=[1, 1, 1],
    embedding_dim=16,
    n_mels=32,
    classes_per_batch=4,
    clips_per_class=2,
    clip_seconds=0.5,
    steps_per_epoch=3,
    val_episodes=20,
    warmup_steps=2,
    calibration_episodes=40,
)


def tone(freq, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (
        0.4 * np.sin(2 * math.pi * freq * (1 + 0.02 * rng.standard_normal()) * t) + 0.01 * rng.standard_normal(len(t))
    ).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    for c in range(6):
        for n in range(6):
            write(root / f"class{c}" / f"{n}.wav", tone(200 * 1.6**c, 0.6, seed=10 * c + n))
    return root


def run(tmp_path, data, log=lambda *a: None, callbacks=(plot_curves,), **overrides):
    config = TrainConfig(out=str(tmp_path / "model.pt"), **{**TINY, "epochs": 2, "val_classes": 2, **overrides})
    return train(config, [DataSource(str(data), "tones")], progress=False, log=log, callbacks=callbacks)


@pytest.mark.slow
def test_training_writes_model_metrics_plot_and_checkpoints(tmp_path, data):
    final = run(tmp_path, data)
    assert (tmp_path / "model.pt").is_file()
    run_dir = tmp_path / "model.run"
    for name in ("best.pt", "last.pt", "state.pt", "metrics.csv", "metrics.json", "curves.png"):
        assert (run_dir / name).is_file(), name
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["step"] == 6
    assert 0.0 <= final["val_accuracy"] <= 1.0 and math.isfinite(final["train_loss"])
    model = load_checkpoint(tmp_path / "model.pt")
    assert model.embedding_dim == 16 and len(model.info["label_set"]) == 4
    assert len(model.info["validation_classes"]) == 2
    assert "verification_threshold" in model.info
    best = load_checkpoint(run_dir / "best.pt")  # the written model is the best epoch, with its calibration map
    assert model_fingerprint(model) == model_fingerprint(best) and "calibration" not in best.info
    assert set(model.info["calibration"]) == {"prototype", "knn"}
    assert model.info["calibration"]["prototype"]["fitted_on"]["classes"] == 2
    # Measured on the training clips: long recordings run the new model's trunk in int8 as well.
    if int8_available():
        assert list(model.info["int8_ranges"]) == trunk_points(model.encoder) and "int8_ranges" not in best.info
        assert SlidingEmbedder(model, 0.5, 0.16).precision == "int8"


@pytest.mark.slow
def test_resume_continues_with_nothing_lost(tmp_path, data):
    straight = tmp_path / "a"
    run(straight, data, epochs=3)
    split = tmp_path / "b"
    seen = []

    def interrupt_after_two_epochs(history, run_dir):  # a callback runs once the epoch is committed
        seen.append((len(history), (run_dir / "metrics.json").is_file()))
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(split, data, epochs=3, callbacks=(interrupt_after_two_epochs,))
    assert seen == [(1, True), (2, True)] and not (split / "model.run" / "curves.png").exists()
    run(split, data, epochs=3, resume=True)
    a = load_checkpoint(straight / "model.run" / "last.pt").state_dict()
    b = load_checkpoint(split / "model.run" / "last.pt").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    history = json.loads((split / "model.run" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


@pytest.mark.slow
def test_label_free_training_and_contrastive_loss(tmp_path, data, monkeypatch):
    # Label-free positives are two augmented crops of one clip; speed perturbation makes them differ in voice
    # too, and must actually run on the training clips, not only be recorded.
    from audiosiam import transforms

    calls, apply = [], transforms.SpeedPerturb._apply
    monkeypatch.setattr(transforms.SpeedPerturb, "_apply", lambda *a: calls.append(1) or apply(*a))
    config = TrainConfig(
        out=str(tmp_path / "free.pt"), **{**TINY, "epochs": 1, "val_classes": 0, "speed_perturb": 0.15}
    )
    train(config, [], unlabelled=[DataSource(str(data))], progress=False, log=lambda *a: None)
    assert (tmp_path / "free.pt").is_file() and calls
    assert torch.load(tmp_path / "free.pt", weights_only=False)["info"]["training_config"]["speed_perturb"] == 0.15
    run(tmp_path / "c", data, loss="contrastive", epochs=1)
    assert (tmp_path / "c" / "model.pt").is_file()


def test_without_validation_the_lowest_loss_is_kept_whatever_its_size(tmp_path, data):
    # No held-out classes: the best checkpoint is the epoch with the lowest training loss, even when
    # every loss is above 1 (a wide margin), which once left no best checkpoint and lost the run.
    lines = []
    final = run(tmp_path, data, log=lambda *a: lines.append(" ".join(map(str, a))), val_classes=0, margin=4.0, epochs=2)
    assert final["train_loss"] > 1.0 and (tmp_path / "model.pt").is_file()
    history = json.loads((tmp_path / "model.run" / "metrics.json").read_text())
    kept = torch.load(tmp_path / "model.pt", weights_only=False)["info"]["metrics"]
    assert kept["train_loss"] == min(h["train_loss"] for h in history)
    # the loss as it is, not the negated score it is ranked by
    assert f"best model (train loss {kept['train_loss']:.4f})" in "\n".join(lines)


def test_recipe_sources(tmp_path, data):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "sources": [{"name": "t", "path": str(data)}],
                "unlabelled": [str(data)],
                "background": [str(data / "class0")],
            }
        )
    )
    labelled, unlabelled, background = load_sources([str(recipe), str(data)])
    assert [s.name for s in labelled] == ["t", data.name] and len(unlabelled) == 1 and len(background) == 1


def test_exclude_holds_a_group_out_of_every_manifest_source(tmp_path, data):
    manifest = tmp_path / "m.csv"
    rows = [(f"{data}/class{c}/{n}.wav", c, f"s{n % 3}") for c in range(6) for n in range(6)]
    manifest.write_text("path,sound,speaker\n" + "".join(f"{p},{c},{g}\n" for p, c, g in rows))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "path": "m.csv",
                        "label_columns": ["sound"],
                        "group_column": "speaker",
                        "exclude": {"sound": ["5"]},
                    },
                    {"path": str(data)},
                ],
                "unlabelled": [{"path": "m.csv", "label_columns": ["path"]}],
            }
        )
    )
    labelled, unlabelled, _ = load_sources([str(recipe)], exclude={"speaker": ["s0", "s1"]})
    items = labelled[0].items()
    assert {it.group for it in items} == {"s2"} and {it.label for it in items} == {"0", "1", "2", "3", "4"}
    assert len(labelled[1].items()) == 36  # a class folder has no speaker column: untouched
    assert unlabelled[0].exclude == {"speaker": ["s0", "s1"]}
    assert len(unlabelled[0].items()) == 12  # s2: takes 2 and 5 of each class
    with pytest.raises(ParameterError, match="has a 'voice' column"):
        load_sources([str(recipe)], exclude={"voice": ["x"]})


def fake_dataset(classes):
    """A stand-in with the fields _class_weights reads: items know their source and label-freeness."""
    from audiosiam.data import ClipItem

    def item(c):
        free = c.startswith("unlabelled/")
        return ClipItem(f"{c}.wav", c, source=c.split("/")[1] if free else c.split("/")[0], label_free=free)

    class Fake:
        pass

    Fake.classes, Fake.items = list(classes), [item(c) for c in classes]
    return Fake


def test_class_weights_balance_sources_and_label_free_share():
    from audiosiam.training.data import class_weights as _class_weights

    Fake = fake_dataset(
        ["words/yes", "words/no", "drums/a", "drums/b", "drums/c", "drums/d", "unlabelled/x/1", "unlabelled/y/2"]
    )

    balanced = _class_weights(Fake(), 0.2, True)
    assert balanced[0] == pytest.approx(0.2) and balanced[2] == pytest.approx(0.1) and balanced[6] == pytest.approx(0.1)
    assert sum(balanced.values()) == pytest.approx(1.0)
    flat = _class_weights(Fake(), 0.2, False)
    assert flat[0] == pytest.approx(flat[5]) and sum(flat.values()) == pytest.approx(1.0)


@pytest.mark.slow
def test_environmental_augmentations_run_on_the_training_clips(tmp_path, data, monkeypatch):
    # reverb, equaliser and mixing with another class's clip must act on what the encoder sees
    from audiosiam import transforms

    calls = {"reverb": 0, "eq": 0, "mix": 0}
    for cls, key in ((transforms.Reverb, "reverb"), (transforms.RandomEqualizer, "eq")):
        original = cls._apply
        monkeypatch.setattr(
            cls, "_apply", lambda *a, _o=original, _k=key: calls.__setitem__(_k, calls[_k] + 1) or _o(*a)
        )
    mix_forward = transforms.MixBatch.forward
    monkeypatch.setattr(
        transforms.MixBatch, "forward", lambda *a: calls.__setitem__("mix", calls["mix"] + 1) or mix_forward(*a)
    )
    run(tmp_path, data, epochs=1, reverb=1.0, equalizer=1.0, mix_batch=1.0)
    assert calls["reverb"] > 0 and calls["eq"] > 0 and calls["mix"] == TINY["steps_per_epoch"]
    info = torch.load(tmp_path / "model.pt", weights_only=False)["info"]["training_config"]
    assert (info["reverb"], info["equalizer"], info["mix_batch"]) == (1.0, 1.0, 1.0)


def test_class_weights_follow_source_weights_for_labelled_and_label_free_sources(tmp_path):
    from audiosiam.training.data import class_weights as _class_weights

    Fake = fake_dataset(
        ["env/a", "env/b", "words/yes", "unlabelled/free_env/x", "unlabelled/free_speech/y", "unlabelled/free_speech/z"]
    )

    w = _class_weights(Fake(), 0.3, True, {"env": 3.0, "free_env": 2.0})
    assert w[0] + w[1] == pytest.approx(0.7 * 3 / 4) and w[2] == pytest.approx(0.7 / 4)
    assert w[3] == pytest.approx(0.3 * 2 / 3) and w[4] == w[5] == pytest.approx(0.3 / 6)
    assert sum(w.values()) == pytest.approx(1.0)
    # a recipe's "weight" reaches the source
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps(
            {
                "sources": [{"name": "env", "path": str(tmp_path), "weight": 2.5}],
                "unlabelled": [{"name": "f", "path": str(tmp_path), "weight": 0.5}],
            }
        )
    )
    labelled, unlabelled, _ = load_sources([str(recipe)])
    assert labelled[0].weight == 2.5 and unlabelled[0].weight == 0.5


def test_validation_classes_only_from_the_named_sources(tmp_path, data):
    from audiosiam.data import AudioClipDataset, ClipItem
    from audiosiam.training.data import split_classes as _split_classes

    items = [
        ClipItem(f"{i}.wav", f"{src}/{c}", source=src)
        for src in ("words", "sounds")
        for c in range(8)
        for i in range(6)
    ]
    dataset = AudioClipDataset(items)
    held = _split_classes(dataset, 4, seed=0, sources=["sounds"])
    assert len(held) == 4 and all(c.startswith("sounds/") for c in held)
    with pytest.raises(ParameterError, match="val_sources"):
        _split_classes(dataset, 4, seed=0, sources=["drums"])


def test_a_file_listed_by_two_sources_is_held_out_under_both_names(tmp_path, data):
    # the same files as finer classes (tones/classN) and as coarser ones (kinds/low, kinds/high): a file of a
    # validation class must not come back into training under its other name
    from audiosiam.training.data import build_datasets as _datasets

    files = sorted(data.rglob("*.wav"))
    manifest = tmp_path / "kinds.csv"
    manifest.write_text(
        "path,label\n" + "".join(f"{f},{'low' if f.parent.name < 'class3' else 'high'}\n" for f in files)
    )
    config = TrainConfig(out=str(tmp_path / "model.pt"), **{**TINY, "val_classes": 2})
    sources = [DataSource(str(data), "tones"), DataSource(str(manifest), "kinds")]
    train_set, val_set, held, _, _ = _datasets(config, sources, [], [], rank=0, say=lambda *a: None, progress=False)
    assert held and set(train_set.paths).isdisjoint(val_set.paths)
    assert len(set(train_set.paths)) == len(files) - len(set(val_set.paths))


def test_a_diverging_step_stops_the_run_naming_its_files_and_keeps_the_last_good_epoch(tmp_path, data, monkeypatch):
    from audiosiam.errors import TrainingDivergedError
    from audiosiam.losses import TripletLoss

    calls, forward = [], TripletLoss.forward

    def poisoned(self, emb, labels):
        calls.append(1)
        loss = forward(self, emb, labels)
        return loss * float("nan") if len(calls) == TINY["steps_per_epoch"] + 2 else loss  # epoch 2, step 2

    monkeypatch.setattr(TripletLoss, "forward", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 5: the loss is not finite") as info:
        run(tmp_path, data, epochs=3)
    assert str(data) in str(info.value) and ".wav" in str(info.value)  # the batch's files are named
    state = torch.load(tmp_path / "model.run" / "state.pt", weights_only=True)
    assert state["epoch"] == 0 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )
    load_checkpoint(tmp_path / "model.run" / "last.pt")  # finite, loads


@pytest.mark.slow
def test_a_checkpoint_with_non_finite_weights_is_refused(tmp_path, data):
    from audiosiam.errors import CheckpointError

    run(tmp_path, data, epochs=1)
    model = load_checkpoint(tmp_path / "model.pt")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    model.save(tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(tmp_path / "nan.pt")


def test_the_old_names_of_the_pk_batch_shape_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"TrainConfig\(p=\.\.\., k=\.\.\.\) is now"):
        config = TrainConfig(p=8, k=3)
    assert (config.classes_per_batch, config.clips_per_class) == (8, 3)
    assert "p" not in dataclasses.asdict(config)  # checkpoints record the new names only


def test_epochs_and_learning_rate_are_checked_before_any_work(tmp_path, data):
    for bad in ({"epochs": 0}, {"lr": -1.0}):
        with pytest.raises(ParameterError, match="at least 1 epoch, a positive learning rate"):
            run(tmp_path, data, **bad)


@pytest.mark.slow
def test_resume_refuses_another_architecture_and_a_damaged_state(tmp_path, data):
    from audiosiam.errors import CheckpointError

    run(tmp_path, data, epochs=1)
    with pytest.raises(CheckpointError, match="state.pt: does not fit this run's model.*architecture"):
        run(tmp_path, data, epochs=2, resume=True, embedding_dim=24)
    state = tmp_path / "model.run" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="state.pt: not a readable training state.*without --resume"):
        run(tmp_path, data, epochs=2, resume=True)


@pytest.mark.slow
def test_a_run_carried_to_another_corpus_folder_resumes_and_other_data_is_refused(tmp_path, data):
    import shutil

    run(tmp_path / "a", data, epochs=1)
    moved = tmp_path / "elsewhere" / "tones"  # the same corpus rebuilt under another folder (another machine)
    shutil.copytree(data, moved)
    (tmp_path / "b" / "model.run").mkdir(parents=True)
    shutil.copyfile(tmp_path / "a" / "model.run" / "state.pt", tmp_path / "b" / "model.run" / "state.pt")
    with pytest.raises(ParameterError, match="best.pt is missing .* copy it with state.pt"):
        run(tmp_path / "b", moved, epochs=2, resume=True)
    shutil.copyfile(tmp_path / "a" / "model.run" / "best.pt", tmp_path / "b" / "model.run" / "best.pt")
    assert run(tmp_path / "b", moved, epochs=2, resume=True)["epoch"] == 2
    (moved / "class5" / "5.wav").unlink()  # not the same clips any more
    with pytest.raises(ParameterError, match=r"state.pt was trained on \d+ clips .* the training data differ"):
        run(tmp_path / "b", moved, epochs=3, resume=True)


@pytest.mark.slow
def test_init_from_a_checkpoint_of_another_architecture_is_explained(tmp_path, data):
    run(tmp_path / "a", data, epochs=1)
    start = tmp_path / "a" / "model.pt"
    with pytest.raises(ParameterError, match=r"init=.*embedding_dim 16 \(this run: 24\).*leave out the architecture"):
        run(tmp_path / "b", data, epochs=1, init=str(start), embedding_dim=24)


@pytest.mark.slow
def test_a_full_disk_is_named_and_keeps_the_last_good_epoch(tmp_path, data, monkeypatch):
    import errno

    from audiosiam.errors import CheckpointError

    run(tmp_path, data, epochs=1)
    before = (tmp_path / "model.run" / "state.pt").read_bytes()
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if "state.pt" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=r"state\.pt: cannot be written \(No space left on device\)"):
        run(tmp_path, data, epochs=2, resume=True)
    assert (tmp_path / "model.run" / "state.pt").read_bytes() == before


def test_automatic_validation_steps_aside_when_there_are_too_few_classes(tmp_path, data):
    with pytest.warns(UserWarning, match="training without validation classes"):
        run(tmp_path, data, epochs=1, val_classes=None)  # 6 classes: holding 5 out would leave 1
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.needs_shared_data
def test_the_manifest_example_of_train_help_runs_as_written(tmp_path, shared_data):
    import shlex

    from cli_runner import cli

    from audiosiam.commands.train import EXAMPLES

    lines = EXAMPLES.replace("\\\n", " ").splitlines()  # join continued lines
    example = next(line.strip() for line in lines if "fsdd/manifest.csv" in line)
    args = shlex.split(example)[1:]  # drop "audiosiam"
    args = [str(shared_data / "fsdd" / "manifest.csv") if a == "fsdd/manifest.csv" else a for a in args]
    args[args.index("--out") + 1] = str(tmp_path / "fsdd04.pt")
    tiny = ["--epochs", "1", "--steps-per-epoch", "1", "--channels", "8,8,16,16", "--blocks", "1,1,1"]
    code, _, err = cli(*args, *tiny, "--embedding-dim", "16", "--no-progress")
    assert code == 0, err
    assert (tmp_path / "fsdd04.pt").is_file()


def test_an_output_that_is_a_folder_is_refused_before_training(tmp_path, data, monkeypatch):
    import audiosiam.training.loop as loop

    monkeypatch.setattr(loop, "build_model", lambda *a: pytest.fail("trained before checking --out"))
    (tmp_path / "out").mkdir()
    config = TrainConfig(out=str(tmp_path / "out"), **{**TINY, "epochs": 1, "val_classes": 0})
    with pytest.raises(ParameterError, match="out: is a folder"):
        train(config, [DataSource(str(data), "tones")], progress=False, log=lambda *a: None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_training_on_a_gpu_that_is_not_there_is_refused_first(tmp_path, data):
    with pytest.raises(ParameterError, match="no CUDA GPU is visible"):
        run(tmp_path, data, epochs=1, device="cuda")


@pytest.mark.slow
def test_a_fine_tune_validates_on_the_classes_its_starting_model_validated_on(tmp_path, data):
    run(tmp_path / "a", data, epochs=1)
    start = tmp_path / "a" / "model.pt"
    before = load_checkpoint(start).info["validation_classes"]
    more = tmp_path / "more"  # data added for the fine-tune: a new draw would pick other classes
    for c in range(6, 9):
        for n in range(6):
            write(more / f"class{c}" / f"{n}.wav", tone(200 * 1.6**c, 0.6, seed=10 * c + n))
    config = TrainConfig(out=str(tmp_path / "b" / "model.pt"), **{**TINY, "epochs": 1, "val_classes": 4})
    config.init, config.val_classes_of = str(start), str(start)
    sources = [DataSource(str(data), "tones"), DataSource(str(more), "tones")]
    train(config, sources, progress=False, log=lambda *a: None)
    after = load_checkpoint(tmp_path / "b" / "model.pt").info
    assert after["validation_classes"] == before and not set(before) & set(after["label_set"])
    # refused by name: a checkpoint without validation classes, and data without any of them
    run(tmp_path / "c", data, epochs=1, val_classes=0)
    with pytest.raises(ParameterError, match="records no validation classes"):
        run(tmp_path / "d", data, epochs=1, val_classes_of=str(tmp_path / "c" / "model.pt"))
    config = TrainConfig(out=str(tmp_path / "e" / "model.pt"), **{**TINY, "epochs": 1}, val_classes_of=str(start))
    with pytest.raises(ParameterError, match="none of its 2 validation classes"):
        train(config, [DataSource(str(more), "tones")], progress=False, log=lambda *a: None)


@pytest.mark.slow
def test_fitting_the_calibration_afterwards_measures_the_weights_own_verification_threshold(tmp_path, data):

    from audiosiam.data.sources import validation_items
    from audiosiam.evaluation import verification_metrics

    run(tmp_path, data)
    path = tmp_path / "model.pt"
    model = load_checkpoint(path)
    with torch.no_grad():  # other weights, as averaging two checkpoints gives: the copied threshold is stale
        for p in model.parameters():
            p.mul_(0.5)
    model.save(
        path, **{k: v for k, v in model.info.items() if k != "verification_threshold"}, verification_threshold=0.123
    )
    from scripts import fit_calibration as module

    assert module.main([str(path), "--episodes", "40", "--no-validation-sets"]) == 0
    after = load_checkpoint(path)
    assert model_fingerprint(after) == model_fingerprint(model)  # weights untouched
    items = validation_items(after.info, [])
    classes = sorted({it.label for it in items})
    emb = after.embed([it.path for it in items])
    expected = verification_metrics(emb, [classes.index(it.label) for it in items])["eer_threshold"]
    assert after.info["verification_threshold"] == pytest.approx(expected, abs=1e-6) != 0.123
    assert set(after.info["calibration"]) == {"prototype", "knn"}


@pytest.mark.slow
def test_a_run_stopped_in_its_first_epoch_resumes_from_its_start(tmp_path, data, monkeypatch):
    import audiosiam.training.loop as loop

    run(tmp_path / "a", data, epochs=2)
    real_commit = loop.commit_epoch

    def stop(*args, **kwargs):  # stopped before epoch 1 commits: only the run's start is in state.pt
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "commit_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", data, epochs=2)
    monkeypatch.setattr(loop, "commit_epoch", real_commit)
    said = []
    run(tmp_path / "b", data, epochs=2, resume=True, log=said.append)
    assert "resuming from the start" in said
    a = load_checkpoint(tmp_path / "a" / "model.run" / "last.pt").state_dict()
    b = load_checkpoint(tmp_path / "b" / "model.run" / "last.pt").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


DAMAGED_COUNTERS = [  # (field of state.pt, value, words of the refusal)
    ("best", "x", "best='x'"),
    ("best", float("nan"), "best=nan"),
    ("epoch", -5, "epoch=-5"),
    ("epoch", 10**9, "epoch=1000000000 but 1 history records"),
    ("epoch", True, "epoch=True"),
    ("history", "x", "history=str"),
    ("step", -1, "step=-1"),
    ("elapsed", float("inf"), "elapsed=inf"),
]


def test_resume_refuses_a_state_with_damaged_counters(tmp_path, data):
    import re

    from audiosiam.errors import CheckpointError
    from audiosiam.models.checkpoint_file import read_trusted, write_checkpoint_file

    run(tmp_path, data, epochs=1, val_classes=0)
    path = tmp_path / "model.run" / "state.pt"
    state = read_trusted(path, "training state", "")
    for field, value, words in DAMAGED_COUNTERS:
        write_checkpoint_file(path, {**state, field: value})
        with pytest.raises(CheckpointError, match=rf"state\.pt: damaged training state \({re.escape(words)}"):
            run(tmp_path, data, epochs=2, resume=True, val_classes=0)


def _budgets(monkeypatch):
    """Every ``_Budget`` a run makes, kept for a look afterwards."""
    import audiosiam.training.loop as loop

    made = []

    class Kept(loop.Budget):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(loop, "Budget", Kept)
    return made


class _Clock:
    """``time`` for the training module with a clock that moves 0.1 s at each look: a run's timing logic
    without the machine's speed in it."""

    now = 1000.0

    @classmethod
    def time(cls) -> float:
        cls.now += 0.1
        return cls.now

    perf_counter = time


@pytest.mark.slow
def test_a_time_budget_leaves_the_finishing_steps_their_time_and_out_appears_once(tmp_path, data, monkeypatch):
    import audiosiam.training.finish as finish
    import audiosiam.training.loop as loop

    budgets = _budgets(monkeypatch)
    monkeypatch.setattr(loop, "time", _Clock)
    # the finishing steps said to take 8 s (x 1.25 margin): of a 15 s budget, training gets what is left
    monkeypatch.setattr(loop, "finishing_seconds", lambda *a: {"calibration": 8.0})
    out = tmp_path / "model.pt"
    fit_int8 = finish.measure_int8_ranges

    def finishing_unseen(path, *args):  # OUT is not there while the finishing steps run
        assert not out.exists() and path != out
        fit_int8(path, *args)

    monkeypatch.setattr(finish, "measure_int8_ranges", finishing_unseen)
    lines = []
    with pytest.warns(UserWarning, match="--warmup-steps 100 is more than this time budget allows"):
        run(tmp_path, data, log=lines.append, epochs=10_000, time_budget_minutes=0.25, warmup_steps=100)
    (budget,) = budgets
    assert budget.finishing == 10.0 and 0 < budget.spent < 1 and not budget.squeezed
    assert budget.training == pytest.approx(15.0 - 10.0 - budget.spent)  # what training gets of the budget
    said = next(line for line in lines if line.startswith("time budget "))  # said before training
    assert f"training stops after {budget.training / 60:.1f} min, leaving about 10 s for the last validation" in said
    history = json.loads((tmp_path / "model.run" / "metrics.json").read_text())
    assert 1 < len(history) < 10_000 and any(line.startswith("time budget: training stopped") for line in lines)
    # no epoch starts once the training time is over; the one that crosses it stops at its step
    assert all(h["elapsed_minutes"] * 60 <= budget.training for h in history[:-1])
    assert history[-1]["elapsed_minutes"] * 60 < budget.training + 0.5
    assert history[-1]["lr"] < 0.15 * 2e-3  # the cosine ran over the training time, not the whole budget
    model = load_checkpoint(out)
    assert "calibration" in model.info and not (tmp_path / "model.run" / "final.pt").exists()
    if int8_available():
        assert "int8_ranges" in model.info


def test_a_budget_smaller_than_its_finishing_steps_says_how_long_the_run_will_take(tmp_path, data, monkeypatch):
    import audiosiam.training.loop as loop

    budgets, lines = _budgets(monkeypatch), []
    monkeypatch.setattr(loop, "time", _Clock)
    monkeypatch.setattr(loop, "finishing_seconds", lambda *a: {"calibration": 20.0})
    run(tmp_path, data, log=lines.append, epochs=10_000, time_budget_minutes=0.25, calibration_episodes=0)
    (budget,) = budgets
    assert budget.squeezed and budget.training == 15.0 / 4  # a quarter of the budget trains, whatever is left
    said = next(line for line in lines if line.startswith("time budget "))
    run_minutes = (budget.spent + 15.0 / 4 + 25.0) / 60
    assert "take about 25 s, more than the budget leaves" in said and f"about {run_minutes:.1f} min" in said


@pytest.mark.slow
def test_a_time_budget_run_ends_within_the_budget_or_the_time_it_states(tmp_path, data, monkeypatch):
    import time

    budgets, lines = _budgets(monkeypatch), []
    start = time.perf_counter()
    run(tmp_path, data, log=lines.append, epochs=10_000, time_budget_minutes=0.1, warmup_steps=1)
    wall = time.perf_counter() - start
    (budget,) = budgets
    # measured on a share of each, before training: the last validation, the calibration map, the int8 ranges
    said = next(line for line in lines if line.startswith("time budget "))
    assert budget.finishing > 0 and ("take about" if budget.squeezed else "leaving about") in said
    stated = budget.spent + budget.training + budget.finishing  # the budget, or more when it says so
    assert stated == pytest.approx(max(budget.total, budget.spent + budget.total / 4 + budget.finishing))
    assert wall < stated + 30.0  # generous: a shared machine; the logic is held by the test above


@pytest.mark.slow
def test_finishing_steps_are_timed_on_a_share_of_each(data, monkeypatch):
    from audiosiam.training.budget import finishing_seconds
    from audiosiam.training.data import build_datasets
    from audiosiam.training.model import build_model

    config = TrainConfig(**{**TINY, "val_classes": 2})
    train_set, val_set, *_ = build_datasets(config, [DataSource(str(data), "tones")], [], [], rank=0,
                                               say=lambda *a: None, progress=False)  # fmt: skip
    model = build_model(config)
    cost = finishing_seconds(model, val_set, [it.path for it in train_set.items], config)
    assert set(cost) == {"validation", "calibration"} | ({"int8 ranges"} if int8_available() else set())
    assert all(v > 0 for v in cost.values()) and model.training  # the model itself is left as it was
    assert set(finishing_seconds(model, None, [], TrainConfig(**TINY))) <= {"int8 ranges"}


def test_warm_up_ends_at_its_steps_or_a_tenth_of_a_budget():
    from audiosiam.training.schedule import lr_factor as _lr_factor

    assert _lr_factor(0.0, 0, 100) == pytest.approx(0.01)
    assert _lr_factor(0.05, 4, 100, warmup_share=0.1) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert _lr_factor(0.1, 9, 100, warmup_share=0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    assert _lr_factor(0.1, 9, 5, warmup_share=0.1) == _lr_factor(0.1, 9, 5)  # the steps end it first


@pytest.mark.slow
def test_the_closing_summary_says_when_the_model_is_weak(tmp_path, data, monkeypatch):
    import audiosiam.evaluation as evaluation
    from audiosiam.training.finish import weakness as _weakness

    assert _weakness(0.95, 5, None, 0) == [] and _weakness(None, 0, None, 0) == []
    (reason,) = _weakness(0.25, 5, None, 0)
    assert "5-way 1-shot accuracy, 0.25, is near chance (0.20)" in reason
    monkeypatch.setattr(evaluation, "calibration_metrics", lambda *a, **k: {"false_reject_rate": 0.97})
    with pytest.warns(UserWarning, match="this model is weak: classify answers unknown to 97%"):
        run(tmp_path, data, epochs=1)


def test_train_shows_progress_bars_only_on_a_terminal(tmp_path, data, monkeypatch):
    from cli_runner import cli

    import audiosiam.training as training

    seen = []
    monkeypatch.setattr(training, "train", lambda *a, progress, **k: seen.append(progress) or {})
    assert cli("train", data, "--out", tmp_path / "m.pt")[0] == 0  # stderr is not a terminal here
    assert seen == [False]
