"""`audiosiam export`: a model as one ONNX or torch.export graph, waveforms in, embeddings out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ParameterError

EXAMPLES = """\
examples:
  audiosiam export default --out default.onnx                 # for onnxruntime
  audiosiam export speaker --format torch --out speaker.pt2   # for torch.export.load
  audiosiam export mine.pt --out mine.onnx                    # a checkpoint of `audiosiam train`

The graph holds the front end, the encoder and the length policy of `audiosiam embed` (short clips padded,
long ones cut into windows whose embeddings are averaged): input "waveform", (batch, samples) float32, mono,
at the model's sample rate (printed, and stored in the file's metadata), any batch and length, one length
per call; output "embedding", (batch, D) float32, rows L2-normalised, equal to audiosiam's embeddings of
the same clips. Decoding, mixing to mono and resampling stay outside: do them first (README, "Deploy").

Compiled ops cannot be exported: the graph holds their pure-PyTorch references (same values to float
rounding), and the command says which. Without --format, the suffix of --out chooses (.pt2: torch, else
onnx).
"""

# The one-line summary `audiosiam --help` shows.
HELP = "write a model as an ONNX or torch.export graph (waveform in, embedding out)"

# format -> suffix; ``models.export.FORMATS``, written out because the parser is built before torch is imported
_SUFFIXES = {"onnx": ".onnx", "torch": ".pt2"}
_NAMES = {"onnx": "an ONNX", "torch": "a torch.export"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help=HELP,
        description="Export a model, front end included, for onnxruntime or torch.export.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default="default",
        help="bundled preset name ('default', 'speaker', 'sfx'; see 'audiosiam info') or a checkpoint file "
        "(default: default)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.onnx or .pt2)")
    p.add_argument(
        "--format",
        choices=tuple(_SUFFIXES),
        default=None,
        help="onnx (onnxruntime) or torch (torch.export); default: from the suffix of --out, else onnx",
    )


def _chosen_format(out: str, fmt: str | None) -> str:
    """The format asked for, or the one the suffix of ``out`` names; a suffix of the other format is refused."""
    suffix = Path(out).suffix.lower()
    named = next((name for name, known in _SUFFIXES.items() if suffix == known), None)
    if fmt is None:
        return named or "onnx"
    if named is not None and named != fmt:
        raise ParameterError(
            f"--out {out}: the suffix of {_NAMES[named]} file, but --format {fmt}; "
            f"write {Path(out).stem}{_SUFFIXES[fmt]}"
        )
    return fmt


def run(args) -> int:
    from ..models import load_model
    from ..models.export import export_model
    from ..paths import refuse_folders

    refuse_folders(args.out)
    fmt = _chosen_format(args.out, args.format)
    model = load_model(args.model)
    result = export_model(model, args.out, format=fmt)
    print(
        f"audiosiam export: wrote {result.path} ({'ONNX' if fmt == 'onnx' else 'torch.export'}): "
        f"waveform (batch, samples) float32, mono, {result.sample_rate} Hz -> embedding "
        f"(batch, {result.embedding_dim}) L2-normalised"
    )
    for op in result.reference_ops:
        print(
            f"audiosiam export: {op}: the compiled kernel cannot be exported; the graph holds its "
            "pure-PyTorch reference (the same values to float rounding)",
            file=sys.stderr,
        )
    return 0
