#!/usr/bin/env python3
"""How general is an embedding? Few-shot accuracy on classes no bundled model is trained on, by domain.

    python benchmarks/generality.py default [speaker] [run/model.pt ...] [--episodes 2000] [--json out.json]

For every model, and for a baseline with no learning (the mean and standard deviation over time of a
64-band log-mel spectrogram in dB, each dimension standardised over the evaluated clips, cosine), on
the same seeded episodes:

| domain | data (held out of every training run, for good) | episodes |
|---|---|---|
| environmental kinds, cross-source (headline) | ``heldout_categories.csv``: every clip of every environmental package whose name says bird, cow, sheep/goat, dog/wolf, water, thunder or explosion (``HELD_OUT_CATEGORIES``); 7 kinds | 5-way, 1 query per class, query from **another package** than any support clip |
| environmental | ``heldout_environmental.csv``: the whole ``widelands-data`` source and the classes of the game and effect packages whose names hash into the held-out fifth (``scripts/fetch_training_data.py``, :func:`held_out`) | 5-way, 1 query per class |
| music | ``heldout_music.csv``: the drum kits BJA_Pacific, Gimme A Hand 1.0 and circAfrique v4 and the hashed-out classes of lmms and Sonic Pi | 5-way, 1 query per class |
| words | FSDD digits 5-9 (``../shared/data/fsdd``), support and queries from **different speakers** | 5-way, 5 queries per class |
| multi-source sets | the validation rows of :mod:`audiosiam.data.splits` (foley kinds across packages, animals across sources, saxophone notes across microphones, body percussion, Arabic keywords across speakers, Arabic speakers across words); never trained on | 5-way, 1 query per class, query from another group where the row says so |

``--teacher`` adds a column for aiSFX run as its authors run it (``aisfx``'s librosa front end: each file
loaded at 44.1 kHz by librosa, peak-normalised, its blocks of 100 frames every 50 embedded by the network,
their mean), on the same episodes: the reference the ``sfx`` preset must reproduce.

Each clip of the environmental and music sets is a distinct recording (exact and near duplicates are
removed when the corpus is built), so support and query never share a recording. Those two domains are
reported twice: "within one source" draws the 5 classes of an episode from one package (or drum kit), so
the recording chain, level and codec that tell packages apart say nothing and only the sound does (the
harder and headline number; sources with 5 classes of enough clips only, episodes shared out by their
class counts); "sources mixed" draws them from the whole set. Accuracy: mean over
``--episodes`` seeded episodes with a 95% confidence interval (1.96 standard errors). The corpus comes
from ``python scripts/fetch_training_data.py`` (``--data``); the words set from ``--shared-data``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audiosiam.data import AudioClipDataset  # noqa: E402
from audiosiam.data.items import manifest_items  # noqa: E402
from audiosiam.data.locations import shared_data, training_data  # noqa: E402
from audiosiam.data.splits import validation_sets  # noqa: E402
from audiosiam.errors import ParameterError  # noqa: E402
from audiosiam.evaluation import few_shot_accuracy  # noqa: E402
from audiosiam.functional import log_mel_spectrogram  # noqa: E402
from audiosiam.models import load_model  # noqa: E402

BASELINE = "log-mel mean/std"
TEACHER = "aiSFX (authors' recipe)"


def _package_of(manifest: Path) -> dict[str, str]:
    """path -> the recording source an episode stays within: the package, or the kit for drum kits."""
    with open(manifest, newline="") as handle:
        return {
            row["path"]: row["group"] if row["source"] == "hydrogen-drumkits" else row["source"]
            for row in csv.DictReader(handle)
        }


def domains(data: Path, shared: Path) -> dict[str, dict]:
    """name -> {items, n_query, cross_group, within}: ``within`` maps each clip to the source its episodes
    stay inside (None: episodes mix sources)."""
    manifests = data / "manifests"
    out = {
        "environmental kinds, cross-source": dict(
            items=manifest_items(manifests / "heldout_categories.csv", label_column="label", group_column="group"),
            n_query=1,
            cross_group=True,
            within=None,
        )
    }
    for domain in ("environmental", "music"):
        manifest = manifests / f"heldout_{domain}.csv"
        items = manifest_items(manifest, label_column="label", group_column="group")
        out[f"{domain}, within one source"] = dict(
            items=items, n_query=1, cross_group=False, within=_package_of(manifest)
        )
        out[f"{domain}, sources mixed"] = dict(items=items, n_query=1, cross_group=False, within=None)
    out["words (FSDD 5-9, cross-speaker)"] = dict(
        items=manifest_items(
            shared / "fsdd/manifest.csv",
            label_column="digit",
            where={"digit": ["5", "6", "7", "8", "9"]},
            group_column="speaker",
        ),
        n_query=5,
        cross_group=True,
        within=None,
    )
    for row in validation_sets(shared):
        out[row.name] = dict(items=row.items, n_query=row.n_query, cross_group=row.cross_group, within=None)
    return out


def _episodes(emb, labels, groups, spec, k, episodes, seed, paths) -> dict:
    """Few-shot accuracy; with ``within``, episodes drawn inside each source that has 5 classes with enough
    clips, shared out in proportion to those classes, and pooled (mean and 95% CI over all episodes)."""
    if spec["within"] is None:
        return few_shot_accuracy(
            emb,
            labels,
            n_way=5,
            k_shot=k,
            n_query=spec["n_query"],
            episodes=episodes,
            groups=groups,
            cross_group=spec["cross_group"],
            seed=seed,
        )
    need = k + spec["n_query"]
    parts = {}
    for source in sorted(set(spec["within"][p] for p in paths)):
        idx = [i for i, p in enumerate(paths) if spec["within"][p] == source]
        counts = torch.bincount(labels[idx])
        big = {int(c) for c in torch.nonzero(counts >= need).flatten()}
        idx = [i for i in idx if int(labels[i]) in big]
        if len(big) >= 5:
            parts[source] = (idx, len(big))
    if not parts:
        return {"accuracy": float("nan"), "ci95": float("nan"), "episodes": 0, "sources": {}}
    total_classes = sum(n for _, n in parts.values())
    rows, n_all, means, variances = {}, 0, [], []
    for source, (idx, n_classes) in parts.items():
        n = max(2, round(episodes * n_classes / total_classes))
        r = few_shot_accuracy(emb[idx], labels[idx], n_way=5, k_shot=k, n_query=spec["n_query"], episodes=n, seed=seed)
        rows[source] = {"accuracy": r["accuracy"], "episodes": n, "classes": n_classes}
        std = r["ci95"] * math.sqrt(n) / 1.96
        means.append((n, r["accuracy"]))
        variances.append((n, std**2))
        n_all += n
    mean = sum(n * m for n, m in means) / n_all
    var = sum(n * (v + (m - mean) ** 2) for (n, m), (_, v) in zip(means, variances)) / n_all
    return {"accuracy": mean, "ci95": 1.96 * math.sqrt(var / n_all), "episodes": n_all, "sources": rows}


def baseline_features(waves: list[torch.Tensor], sample_rate: int) -> torch.Tensor:
    """Mean and std over time of a 64-band dB log-mel, each dimension standardised over the clips."""
    rows = []
    for wave in waves:
        mel = log_mel_spectrogram(wave, sample_rate, n_mels=64, normalize=None)
        rows.append(torch.cat([mel.mean(-1), mel.std(-1)]))
    feats = torch.stack(rows)
    return (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)


def teacher_features(paths: list[str]) -> torch.Tensor:
    """aiSFX's embeddings as its authors compute them (``aisfx.inference``, librosa front end, 50% block hop,
    partial last block dropped), the mean of each file's blocks: their code path, with the network of
    :class:`~audiosiam.models.aisfx.AiSfxEncoder` (checked equal to theirs in ``tests/models/test_aisfx.py``)."""
    import librosa
    import numpy as np

    from audiosiam.models.aisfx import AiSfxEncoder, aisfx_weights, authors_features

    network = AiSfxEncoder()
    network.load_state_dict(aisfx_weights())
    network.eval()
    rows = []
    for path in paths:
        y, _ = librosa.load(path, sr=44100)
        spec = authors_features(y).T  # (frames, mels)
        n = max(1, int(np.ceil((len(spec) - 100) / 50 + 1)) - (1 if (len(spec) - 100) % 50 else 0))
        spec = np.vstack([spec, np.zeros((100, spec.shape[1]))])
        blocks = torch.as_tensor(np.stack([spec[50 * i : 50 * i + 100] for i in range(n)]), dtype=torch.float32)
        with torch.inference_mode():
            rows.append(network.frames(blocks.transpose(1, 2)).amax(-1).mean(0))  # raw block embeddings, mean
    return torch.nn.functional.normalize(torch.stack(rows), dim=1)


def evaluate(
    models: list[str],
    data: Path,
    shared: Path,
    episodes: int,
    seed: int,
    k_shots=(1, 5),
    teacher: bool = False,
    only: list[str] | None = None,
) -> dict:
    loaded = {name: load_model(name) for name in models}
    results: dict[str, dict] = {}
    for domain, spec in domains(data, shared).items():
        if only and not any(domain.startswith(prefix) for prefix in only):
            continue
        dataset = AudioClipDataset(spec["items"], clip_seconds=None, on_error="skip")
        waves = [dataset.load(i) for i in range(len(dataset))]
        labels = torch.as_tensor(dataset.labels)
        groups = dataset.groups if spec["cross_group"] else None
        features = {BASELINE: baseline_features(waves, dataset.sample_rate)}
        if teacher:
            features[TEACHER] = teacher_features(dataset.paths)
        for name, model in loaded.items():
            # files, not the 16 kHz waves: a model at another rate (sfx: 44.1 kHz) resamples from the source
            features[name] = (
                model.embed(list(dataset.paths))
                if model.sample_rate != dataset.sample_rate
                else (model.embed(waves, sample_rate=dataset.sample_rate))
            )
        row = {"classes": len(dataset.classes), "clips": len(dataset)}
        for name, emb in features.items():
            for k in k_shots:
                try:
                    cell = _episodes(emb, labels, groups, spec, k, episodes, seed, dataset.paths)
                except ParameterError:  # too few clips per class for k shots (small multi-source rows at 5)
                    cell = {"accuracy": float("nan"), "ci95": float("nan"), "episodes": 0}
                row[f"{name} {k}-shot"] = cell
        results[domain] = row
        print(f"{domain}: done", file=sys.stderr)
    return results


def table(results: dict, models: list[str], k_shots=(1, 5), teacher: bool = False) -> str:
    names = [BASELINE, *([TEACHER] if teacher else []), *models]
    head = "| domain | classes (clips) | " + " | ".join(f"{n} {k}-shot" for n in names for k in k_shots) + " |"
    lines = [head, "|---|---:|" + "---:|" * (len(names) * len(k_shots))]
    for domain, row in results.items():
        cells = [
            "n/a"
            if math.isnan(row[f"{n} {k}-shot"]["accuracy"])
            else f"{100 * row[f'{n} {k}-shot']['accuracy']:.1f} +/- {100 * row[f'{n} {k}-shot']['ci95']:.1f}"
            for n in names
            for k in k_shots
        ]
        lines.append(f"| {domain} | {row['classes']} ({row['clips']}) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Within-source episodes by source (model: first given), k-shot: episodes and accuracy")
    for domain, row in results.items():
        for k in k_shots:
            cell = row.get(f"{models[0]} {k}-shot", {})
            if cell.get("sources"):
                lines.append(
                    f"  {domain}, {k}-shot: "
                    + ", ".join(
                        f"{s} ({v['classes']} classes, {v['episodes']} ep.) {100 * v['accuracy']:.1f}"
                        for s, v in cell["sources"].items()
                    )
                )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="bundled preset names or checkpoint paths")
    parser.add_argument(
        "--data",
        type=Path,
        default=training_data(),
        help="the corpus built by scripts/fetch_training_data.py (default: %(default)s)",
    )
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=shared_data(),
        help="the project's shared recordings (default: %(default)s)",
    )
    parser.add_argument("--episodes", type=int, default=2000, help="episodes per cell (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--teacher", action="store_true", help="add aiSFX as its authors run it (needs aisfx)")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="only the rows whose names start with these")
    args = parser.parse_args(argv)
    for folder, how in (
        (args.data / "manifests", "run scripts/fetch_training_data.py"),
        (args.shared_data / "fsdd", "pass --shared-data"),
    ):
        if not folder.is_dir():
            print(f"{folder}: not found; {how}", file=sys.stderr)
            return 1
    results = evaluate(
        args.models, args.data, args.shared_data, args.episodes, args.seed, teacher=args.teacher, only=args.only
    )
    print(table(results, args.models, teacher=args.teacher))
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
