"""Issue 5's leave-one-speaker-out protocol on FSDD: one training run per speaker, that speaker held out.

For each of FSDD's speakers S: train on digits 0-4 of the other speakers (``audiosiam train RECIPE
--exclude speaker=S``), then evaluate 5-way on digits 5-9 with S's clips as the only queries
(``audiosiam evaluate ... --query-group S``): support from any speaker, and again with support from other
speakers than the query (``--cross-group``). Prints a Markdown table and the mean over speakers, and
writes every run's JSON beside the checkpoints. Runs already trained (checkpoint present) are reused, so
an interrupted sweep continues where it stopped.

Run (from the repository root; about 8 minutes per speaker on a 2-core machine with the defaults):
    python benchmarks/fsdd_leave_one_speaker_out.py --out-dir runs/loso -- --epochs 20 --steps-per-epoch 50 \\
        --speed-perturb 0.15 --val-classes 0 --warmup-steps 50

Arguments after ``--`` go to ``audiosiam train`` unchanged.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from audiosiam.data.locations import shared_data

HERE = Path(__file__).resolve().parent
DEFAULT_RECIPE = HERE / "recipes" / "fsdd_digits_0-4.json"
DEFAULT_MANIFEST = shared_data() / "fsdd" / "manifest.csv"


def _run(args: list[str]) -> None:
    print("+ audiosiam " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "audiosiam", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, train_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where checkpoints and results go")
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="training recipe (FSDD digits 0-4)")
    parser.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="FSDD manifest (digit, speaker columns)")
    parser.add_argument("--speakers", nargs="*", help="only these speakers (default: all in the manifest)")
    parser.add_argument("--episodes", type=int, default=10000)
    args = parser.parse_args(own)

    with open(args.manifest, newline="") as handle:
        speakers = sorted({row["speaker"] for row in csv.DictReader(handle)})
    speakers = args.speakers or speakers
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for speaker in speakers:
        model = out_dir / f"without_{speaker}.pt"
        if not model.is_file():
            _run(
                [
                    "train",
                    args.recipe,
                    "--exclude",
                    f"speaker={speaker}",
                    "--out",
                    str(model),
                    "--no-progress",
                    *train_args,
                ]
            )
        result = {"speaker": speaker}
        for name, extra in (("any", []), ("cross", ["--cross-group"])):
            path = out_dir / f"without_{speaker}.{name}.json"
            if not path.is_file():
                _run(
                    [
                        "evaluate",
                        args.manifest,
                        "--model",
                        str(model),
                        "--label-column",
                        "digit",
                        "--where",
                        "digit=5,6,7,8,9",
                        "--group-column",
                        "speaker",
                        "--query-group",
                        speaker,
                        "--k-shot",
                        "1",
                        "5",
                        "--episodes",
                        str(args.episodes),
                        "--json",
                        str(path),
                        *extra,
                    ]
                )
            data = json.loads(path.read_text())
            result[f"{name} 1-shot"] = data["5-way 1-shot"]["accuracy"]
            result[f"{name} 5-shot"] = data["5-way 5-shot"]["accuracy"]
        info = json.loads((out_dir / f"without_{speaker}.run" / "metrics.json").read_text())
        result["training minutes"] = info[-1]["elapsed_minutes"]
        rows.append(result)

    keys = [k for k in rows[0] if k != "speaker"]
    print("\n| held-out speaker | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for r in rows + [{"speaker": "**mean**", **{k: sum(r[k] for r in rows) / len(rows) for k in keys}}]:
        print(
            f"| {r['speaker']} | "
            + " | ".join(f"{r[k]:.1f}" if k == "training minutes" else f"{100 * r[k]:.2f}%" for k in keys)
            + " |"
        )
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
