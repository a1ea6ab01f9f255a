"""`audiosiam info`: versions, how the compiled core was built, and the bundled models."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  audiosiam info                    # paste this into bug reports
  audiosiam info --model mine.pt    # what a checkpoint is: size, sample rate, training data, metrics
  audiosiam info --format json

If "compiled core" says "not loaded", every op runs its pure-PyTorch reference: correct, but slower.
The line says why and how to rebuild. "CPU level" is the instruction set the CPU kernels run with: the
highest this CPU has (default: any x86-64; avx2; avx512); AUDIOSIAM_CPU_CAPABILITY=default|avx2 lowers it.
"""

OPTIONAL = ("torchaudio", "numpy", "soundfile", "librosa", "faiss-cpu", "scikit-learn", "matplotlib", "tqdm")


# The one-line summary `audiosiam --help` shows.
HELP = "versions, compiled-core build (CUDA, OpenMP, CPU level) and models"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help=HELP,
        description="Show what audiosiam runs on: versions, the compiled core's build and the bundled models.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help="describe this preset or checkpoint instead of listing the bundled presets",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format on stdout")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _describe_model(name_or_path: str | None) -> dict:
    from ..fewshot.verification import verification_threshold
    from ..models import load_model

    model = load_model(name_or_path)
    info = model.info
    metrics = info.metrics
    return {
        "model": name_or_path or "default",
        "source": str(getattr(model, "source", "")),
        "parameters": sum(p.numel() for p in model.parameters()),
        "embedding_dim": model.embedding_dim,
        "sample_rate": model.sample_rate,
        "window_seconds": model.window_seconds,
        "verification_threshold": verification_threshold(model),
        "trained_with_audiosiam": info.audiosiam_version,
        "training_minutes": info.training_minutes,
        "training_classes": len(info.label_set),
        "validation_classes": len(info.validation_classes),
        "calibration_map": info.calibration is not None,
        "int8_long_recordings": info.int8_ranges is not None,
        "best_epoch": metrics.get("epoch"),
        "validation_metrics": {
            # the epoch's own equal-error threshold is not the model's (that is verification_threshold)
            k[4:]: v
            for k, v in metrics.items()
            if k.startswith("val_") and k != "val_eer_threshold" and isinstance(v, (int, float))
        },
    }


def examples_dir() -> str | None:
    """The example clips (``support/``, ``query/``): inside the installed package (a wheel), or beside it in a
    source checkout; ``None`` where neither holds them."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "examples", package.parent / "examples"):
        if (folder / "support").is_dir() and (folder / "query").is_dir():
            return str(folder)
    return None


def collect(model: str | None = None) -> dict:
    import torch

    from .._version import __version__
    from ..models import available_presets
    from ..ops import build_info

    build = build_info()
    report = {
        "audiosiam": __version__,
        # which source tree runs: one environment may serve several clones (the last one built wins)
        "source": str(Path(__file__).resolve().parents[1]),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "compiled_core": build,
        "examples": examples_dir(),
        "packages": {name: _version(name) for name in OPTIONAL},
    }
    if build.get("loaded") and build.get("torch_version") and not torch.__version__.startswith(build["torch_version"]):
        report["warning"] = (
            f"the compiled core was built against torch {build['torch_version']} but torch "
            f"{torch.__version__} is running; rebuild it"
        )
    if model is not None:
        report["model"] = _describe_model(model)
    else:
        report["presets"] = [_describe_model(name) for name in available_presets()]
    return report


def _format_model(m: dict) -> list[str]:
    lines = [
        f"  {m['model']}: {m['parameters'] / 1e6:.2f}M parameters, {m['embedding_dim']}-d embeddings, "
        f"{m['sample_rate']} Hz, {m['window_seconds']:g} s windows ({m['source']})"
    ]
    if m["training_classes"]:
        lines.append(
            f"    trained on {m['training_classes']} classes with audiosiam {m['trained_with_audiosiam']}, "
            f"kept after {m['training_minutes'] or 0:.0f} min of its run; verification threshold (P(same) = 0.5) "
            f"{m['verification_threshold']:.3f}"
            if m["verification_threshold"] is not None
            else f"    trained on {m['training_classes']} classes"
        )
    lines.append(
        "    probabilities: "
        + ("calibration map" if m["calibration_map"] else "no calibration map (the earlier rule)")
        + "; long recordings: "
        + ("int8 trunk on the CPU" if m["int8_long_recordings"] else "float32 (no int8 ranges)")
    )
    if m["validation_metrics"]:
        lines.append(
            f"    validation (best epoch {m['best_epoch']}): "
            + ", ".join(f"{k} {v:.4g}" for k, v in sorted(m["validation_metrics"].items()))
        )
    return lines


def format_report(r: dict) -> str:
    build = r["compiled_core"]
    if build.get("loaded"):
        core = (
            f"loaded; CUDA kernels {'yes' if build.get('cuda') else 'no'}, OpenMP "
            f"{'yes (%s threads)' % build.get('openmp_max_threads') if build.get('openmp') else 'no'}, "
            f"CPU level {build.get('cpu_capability')} (this CPU and build: "
            f"{', '.join(build.get('cpu_capabilities', []))}), built against torch {build.get('torch_version')} "
            f"with compiler {build.get('compiler')}"
        )
    else:
        from ..ops._extension import REBUILD_HINT

        core = f"NOT loaded ({build.get('reason')}); ops run their pure-PyTorch references. To fix, {REBUILD_HINT}"
    gpus = ", ".join(r["gpus"]) if r["gpus"] else "none visible"
    lines = [
        f"audiosiam      {r['audiosiam']} from {r['source']}",
        f"python         {r['python']} on {r['platform']}",
        f"torch          {r['torch']}, {r['torch_threads']} CPU threads, CUDA available: {r['cuda_available']} "
        f"(GPUs: {gpus})",
        f"compiled core  {core}",
        "examples       "
        + (
            f"{r['examples']} (audiosiam classify --support {r['examples']}/support {r['examples']}/query)"
            if r.get("examples")
            else "not installed"
        ),
        "packages       " + ", ".join(f"{k} {v or 'not installed'}" for k, v in r["packages"].items()),
    ]
    if "warning" in r:
        lines.append(f"WARNING        {r['warning']}")
    if "model" in r:
        lines.append("model")
        lines.extend(_format_model(r["model"]))
    else:
        lines.append("bundled models" if r["presets"] else "bundled models: none found in audiosiam/assets")
        for m in r["presets"]:
            lines.extend(_format_model(m))
    return "\n".join(lines)


def run(args) -> int:
    report = collect(args.model)
    print(json.dumps(report, indent=2, default=str) if args.format == "json" else format_report(report))
    return 0
