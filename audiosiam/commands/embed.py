"""`audiosiam embed`: write the embeddings of audio files to a NumPy file."""

from __future__ import annotations

import argparse
import json
import sys

from . import _common

EXAMPLES = """\
examples:
  audiosiam embed clips/ --out clips.npy
  audiosiam embed a.wav b.flac --out ab.npy --model mine.pt

Writes OUT (float32, shape (N, D), rows L2-normalised, so a dot product is the cosine similarity) and
OUT with .csv beside it (columns row,path) saying which file each row is; the two are written as one
pair (a failed write changes neither; audiosiam.io.read_embeddings reads them back, checked). Unreadable
files are reported on stderr and left out; the exit code is then 1.
"""


# The one-line summary `audiosiam --help` shows.
HELP = "write clip embeddings to a .npy file"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help=HELP,
        description="Embed audio files with an audiosiam model and save the vectors.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="audio files or folders of them")
    p.add_argument("--out", required=True, metavar="NPY", help="output .npy file")
    p.add_argument("--batch-size", type=_common.positive_int, default=64, help="clips per forward pass (default: 64)")
    _common.add_model_option(p)
    _common.add_progress_option(p)
    _common.add_format_option(p, ("table", "json"))


def run(args) -> int:
    from ..errors import NoAudioFilesError
    from ..io import write_embeddings
    from ..paths import refuse_folders

    refuse_folders(args.out)
    model = _common.load_model_from_args(args)
    files = _common.collect_queries(args.inputs)
    embeddings, kept, failures = model.embed_all(
        files, batch_size=args.batch_size, on_error="skip", progress=_common.show_progress(args)
    )
    _common.report_failures(failures, "embed")
    if not kept:
        raise NoAudioFilesError(f"none of the {len(files)} files could be embedded; nothing written to {args.out}")
    out, index = write_embeddings(args.out, embeddings, [str(files[i]) for i in kept])
    if args.format == "json":
        print(
            json.dumps(
                {
                    "embeddings": str(out),
                    "index": str(index),
                    "rows": len(kept),
                    "dim": int(embeddings.shape[1]),
                    "skipped": [f.source for f in failures],
                },
                indent=2,
            )
        )
    else:
        print(
            f"audiosiam embed: {len(kept)} embeddings of size {embeddings.shape[1]} written to {out} "
            f"(file order in {index})",
            file=sys.stderr,
        )
    return 1 if failures else 0
