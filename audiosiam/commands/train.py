"""`audiosiam train`: train an encoder on labelled (and/or unlabelled) audio."""

from __future__ import annotations

import argparse
from dataclasses import fields

from . import _common

EXAMPLES = """\
examples:
  # class folders: data/<class>/*.wav
  audiosiam train data/ --out model.pt --epochs 20

  # a CSV manifest, choosing the label column and a subset of rows
  audiosiam train fsdd/manifest.csv --label-column digit --where digit=0,1,2,3,4 --group-column speaker \\
      --out fsdd04.pt --time-budget-minutes 20

  # several sources, unlabelled audio and background noise from a JSON recipe
  audiosiam train recipe.json --out general.pt

  # leave one speaker out of a recipe (manifest rows of every source with a speaker column)
  audiosiam train benchmarks/recipes/fsdd_digits_0-4.json --exclude speaker=theo --out no_theo.pt

  # two processes (DDP; gloo on CPU, NCCL on GPU)
  torchrun --nproc_per_node=2 -m audiosiam train data/ --out model.pt

Writes OUT (the best checkpoint by held-out few-shot accuracy) and OUT's stem + ".run/" with last.pt,
best.pt, state.pt (for --resume), metrics.csv, metrics.json and curves.png.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "train an encoder (triplet or contrastive loss)"


def add_parser(subparsers) -> None:
    from ..training import TrainConfig

    p = subparsers.add_parser("train", help=HELP,
                              description="Train a twin-network audio encoder.", epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", metavar="DATA", help="class folder, CSV manifest or JSON recipe (several allowed)")
    p.add_argument("--label-column", default="label", help="manifest column(s) naming the class, comma-separated")
    p.add_argument("--where", action="append", default=[], metavar="COL=V1,V2",
                   help="keep only manifest rows whose COL is one of the values (repeatable)")
    p.add_argument("--group-column", default=None, help="manifest column with the speaker/source (for evaluation splits)")
    p.add_argument("--exclude", action="append", default=[], metavar="COL=V1,V2",
                   help="drop manifest rows whose COL is V1 or V2 from every source with that column, recipes "
                        "included (e.g. speaker=theo to hold a speaker out)")
    p.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                   help="folder of unlabelled clips: label-free training, two crops of a clip as positives (repeatable)")
    p.add_argument("--background", action="append", default=[], metavar="DIR",
                   help="folder of background-noise clips to mix into training examples (repeatable)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in ("out", "resume", "channels", "blocks", "val_sources"):
            continue
        default = getattr(defaults, f.name)
        kind = type(default) if default is not None else (float if "minutes" in f.name else (str if f.name == "init" else int))
        if kind is bool:
            p.add_argument(f"--{f.name.replace('_', '-')}", default=default, action=argparse.BooleanOptionalAction)
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=f"(default: {default})")
    p.add_argument("--channels", default=",".join(map(str, defaults.channels)), help="encoder widths: stem,stage1,...")
    p.add_argument("--blocks", default=",".join(map(str, defaults.blocks)), help="residual blocks per stage")
    p.add_argument("--val-sources", default=None, metavar="NAME,NAME",
                   help="hold validation classes out of these sources only (default: any labelled source)")
    p.add_argument("--out", required=True, help="where to write the best checkpoint")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT's .run folder")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..data import DataSource, load_sources
    from ..training import TrainConfig, train

    where = _common.parse_where(args.where)
    labelled, unlabelled, background = load_sources(args.data, label_columns=args.label_column.split(","),
                                                    where=where, group_column=args.group_column,
                                                    exclude=_common.parse_where(args.exclude, option="--exclude"))
    unlabelled += [DataSource(d) for d in args.unlabelled]
    background += list(args.background)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values["channels"] = [int(c) for c in args.channels.split(",")]
    values["blocks"] = [int(b) for b in args.blocks.split(",")]
    values["val_sources"] = args.val_sources.split(",") if args.val_sources else None
    config = TrainConfig(**values)
    train(config, labelled, unlabelled=unlabelled, background=background, progress=not args.no_progress)
    return 0
