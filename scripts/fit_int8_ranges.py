"""Measure a checkpoint's int8 activation ranges on its own training clips and write them into it atomically.

    python scripts/fit_int8_ranges.py audiosiam/assets/default.pt [--minutes 30] [--seed 0]

The ranges let long recordings run the encoder's trunk in 8-bit integers (``audiosiam.models.quantized``;
``find`` and ``classify --segments`` then run ~1.4x faster on the CPU). They are measured on clips of the
sources the checkpoint was trained on (``info["sources"]``, ``info["unlabelled"]`` and ``info["background"]``),
a seeded random draw of each source's files in proportion to its size, each clip's first 10 s, joined into
one-minute recordings. The weights are not touched, which the write checks.
"""

from __future__ import annotations

import argparse
import sys

from audiosiam.data.sources import DataSource
from audiosiam.errors import ParameterError
from audiosiam.models import load_model
from audiosiam.models.checkpoint_file import update_checkpoint_info
from audiosiam.models.info import ModelInfo
from audiosiam.models.int8_ranges import fit_int8_ranges
from audiosiam.models.quantized import RANGES_KEY


def training_files(info: ModelInfo) -> list[str]:
    """Every audio file of the checkpoint's training sources, label-free ones and backgrounds included."""
    sources = [DataSource(**s) for s in info.sources + info.unlabelled]
    sources += [DataSource(path=p) for p in info.background]
    files = sorted({f for source in sources for f in source.files()})
    if not files:
        raise ParameterError("the checkpoint names no training sources (info['sources']); nothing to measure on")
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint file (rewritten in place, atomically)")
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of training clips to measure on (default: 30)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    model = load_model(args.checkpoint)
    ranges = fit_int8_ranges(model, training_files(model.info), minutes=args.minutes, seed=args.seed, progress=True)
    update_checkpoint_info(args.checkpoint, **{RANGES_KEY: ranges})
    print(f"{args.checkpoint}: {RANGES_KEY} written for {len(ranges)} points, weights bit-identical", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
