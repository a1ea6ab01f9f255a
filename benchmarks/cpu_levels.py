"""The CPU levels of one build against a ``-march=native`` build of the same sources, in the same run.

Run:  python benchmarks/cpu_levels.py [--threads 1 2] [--rounds 3] [--json out.json]

The build under test is the importable ``audiosiam._C`` (this tree's, with ``PYTHONPATH=.`` after
``python setup.py build_ext --inplace``): its kernels at every CPU level this machine has, each in its own
process chosen with ``AUDIOSIAM_CPU_CAPABILITY`` as a user would. The reference is the same sources built
with ``-O3 -march=native`` and one level (the build of before issue 33), compiled once into
``~/.cache/audiosiam/cpu-levels-native`` with torch's ``cpp_extension.load`` (minutes, the first time).
``--native-lib LIB.so`` uses a native build made elsewhere instead (e.g. the ``audiosiam/_C*.so`` of a
checkout from before the CPU levels, built with ``-march=native``); ``--extra NAME=LIB.so`` adds another.

Each variant runs in its own process (a library registers the ops once per process), the variants in
turn, ``--rounds`` times, so that a shared machine's drift reaches all of them alike; a case's time is
its best run over all rounds (interference on a shared machine only ever adds time). Every variant's
outputs are checked against the float64 reference (``audiosiam.ops._reference``) before its times are
used. Ratio = native time / variant time (above 1: faster than native); beside it, ``torch.cdist`` and
FAISS ``IndexFlatL2`` timed in the same processes.

Cases (fp32, D = 128): euclidean forward + backward N = M = 512; L1 forward + backward 256; knn 2,000 x
20,000, k = 10; mel_power 6,464 frames (64 one-second clips) x 257 bins -> 64 mels; batch-hard forward +
backward B = 1,024 (PK, K = 4); batch-all B = 512 and semi-hard B = 256 from a distance matrix.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NATIVE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiosiam" / "cpu-levels-native"
D = 128
STALE_LOCK_SECONDS = 30 * 60


def make_inputs(path: Path) -> None:
    """The cases' inputs, made once so that every variant gets the same tensors."""
    from audiosiam.functional import mel_filterbank

    g = torch.Generator().manual_seed(0)
    spectrum = torch.randn(6464, 257, 2, generator=g)
    torch.save(
        {
            "x512": torch.randn(512, D, generator=g),
            "y512": torch.randn(512, D, generator=g),
            "x256": torch.randn(256, D, generator=g),
            "y256": torch.randn(256, D, generator=g),
            "query": torch.randn(2000, D, generator=g),
            "reference": torch.randn(20000, D, generator=g),
            "spectrum": spectrum,
            "filterbank": mel_filterbank(16000, 512, 64),
            "emb": torch.nn.functional.normalize(torch.randn(1024, D, generator=g), dim=1),
            "emb_labels": torch.arange(256).repeat_interleave(4),
            "dist512": torch.cdist(*(torch.randn(512, D, generator=g),) * 2),
            "labels512": torch.arange(128).repeat_interleave(4),
            "dist256": torch.cdist(*(torch.randn(256, D, generator=g),) * 2),
            "labels256": torch.arange(64).repeat_interleave(4),
        },
        path,
    )


def cases(t: dict) -> dict:
    """name -> a callable that runs the case once and returns what is checked."""
    ops = torch.ops.audiosiam

    def fwd_bwd(x, y, metric):
        def run():
            dist = ops.pairwise_distance(x, y, metric)
            return dist, ops._pairwise_distance_backward(torch.ones_like(dist), x, y, dist, metric)[0]

        return run

    def cdist_fwd_bwd(x, y, p):
        def run():
            a = x.detach().requires_grad_()
            torch.cdist(a, y, p=p).sum().backward()
            return a.grad

        return run

    def batch_hard():
        terms, pos, neg, d_ap, d_an = ops.triplet_batch_hard(t["emb"], t["emb_labels"], 0.2, 1.0, False, False)
        grad = ops._triplet_batch_hard_backward(
            torch.ones_like(terms), t["emb"], pos, neg, d_ap, d_an, 0.2, 1.0, False, False
        )
        return terms, grad

    out = {
        "euclidean fwd+bwd 512": fwd_bwd(t["x512"], t["y512"], "euclidean"),
        "l1 fwd+bwd 256": fwd_bwd(t["x256"], t["y256"], "l1"),
        "knn 2k x 20k": lambda: ops.knn(t["query"], t["reference"], 10, "euclidean"),
        "mel_power 6464 x 257": lambda: ops.mel_power(t["spectrum"], t["filterbank"]),
        "batch-hard fwd+bwd 1024": batch_hard,
        "batch-all 512": lambda: ops.triplet_batch_all(t["dist512"], t["labels512"], 0.2, False),
        "semi-hard 256": lambda: ops.triplet_semi_hard_negatives(t["dist256"], t["labels256"], 0.2),
        # baselines, timed in every process
        "cdist euclidean fwd+bwd 512": cdist_fwd_bwd(t["x512"], t["y512"], 2.0),
    }
    try:
        import faiss

        faiss.omp_set_num_threads(torch.get_num_threads())
        index = faiss.IndexFlatL2(D)
        index.add(t["reference"].numpy())
        out["faiss knn 2k x 20k"] = lambda: torch.from_numpy(index.search(t["query"].numpy(), 10)[1])
    except ImportError:
        pass
    return out


def native_library() -> str:
    """Builds (or reuses) the op library of this tree's sources with -march=native, one CPU level."""
    from torch.utils import cpp_extension

    NATIVE_DIR.mkdir(parents=True, exist_ok=True)
    lock = NATIVE_DIR / "lock"
    # torch's builder waits for as long as its lock file exists, and a build killed midway leaves it behind;
    # no build of these sources takes anywhere near STALE_LOCK_SECONDS
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
        print(f"removing {lock}, left by a build that ended {STALE_LOCK_SECONDS // 60}+ minutes ago", flush=True)
        lock.unlink(missing_ok=True)
    per_level = sorted(glob.glob(str(ROOT / "csrc/ops/cpu/*.cpp")))
    unity = NATIVE_DIR / "cpu_kernels.cpp"
    text = "".join(f'#include "{s}"\n' for s in per_level)
    if not unity.is_file() or unity.read_text() != text:
        unity.write_text(text)
    common = [s for s in sorted(glob.glob(str(ROOT / "csrc/**/*.cpp"), recursive=True)) if s not in per_level]
    common.remove(str(ROOT / "csrc/audiosiam.cpp"))  # the Python module: only the ops are needed
    cpp_extension.load(
        name="audiosiam_native_bench",
        sources=common + [str(unity)],
        extra_cflags=["-O3", "-march=native", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(ROOT / "csrc")],
        build_directory=str(NATIVE_DIR),
        is_python_module=False,
        verbose=False,
    )
    return str(NATIVE_DIR / "audiosiam_native_bench.so")


def worker(variant: str, library: str | None, inputs: Path, threads: int, reps: int, out: Path) -> None:
    if library == "native":
        native_library()  # built by the parent already; this loads it
    elif library:
        torch.ops.load_library(library)
    else:
        import audiosiam._C as C

        assert variant == C.cpu_capability(), (variant, C.cpu_capability())
    torch.set_num_threads(threads)
    tensors = torch.load(inputs)
    times, outputs = {}, {}
    for name, run in cases(tensors).items():
        outputs[name] = run()  # warm-up, and the result that is checked
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times[name] = min(samples)  # on a shared machine, interference only ever adds time
    torch.save({"times": times, "outputs": outputs}, out)


def check(name: str, got, t: dict) -> None:
    """Raises unless the variant's outputs of case ``name`` match the float64 reference."""
    from audiosiam.ops import _reference as R

    def close(a, b, tol):
        err = (a.double() - b.double()).abs().max().item()
        assert err <= tol * (1 + b.double().abs().max().item()), f"{name}: max error {err}"

    if name.startswith(("euclidean", "l1")):
        metric, n = ("euclidean", 512) if name.startswith("euclidean") else ("l1", 256)
        x = t[f"x{n}"].double().requires_grad_()
        want = R.pairwise_distance(x, t[f"y{n}"].double(), metric)
        want.sum().backward()
        close(got[0], want, 1e-5)
        close(got[1], x.grad, 1e-4)
    elif name == "knn 2k x 20k":
        want = R.knn(t["query"][:50].double(), t["reference"].double(), 10, "euclidean")[1]
        assert torch.equal(got[1][:50], want), name
    elif name.startswith("mel_power"):
        spec = torch.view_as_complex(t["spectrum"])
        close(got, R.mel_power(spec.to(torch.complex128), t["filterbank"].double()), 1e-5)
    elif name.startswith("batch-hard"):
        want = R.triplet_batch_hard(t["emb"].double(), t["emb_labels"], 0.2, "euclidean", False)
        close(got[0], want[0], 1e-5)
    elif name.startswith("batch-all"):
        want = R.triplet_batch_all(t["dist512"], t["labels512"], 0.2, False)
        close(got[0], want[0], 1e-5)
    elif name.startswith("semi-hard"):
        assert torch.equal(got, R.triplet_semi_hard_negatives(t["dist256"], t["labels256"], 0.2)), name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=11, help="timed runs per case and process (the best counts)")
    parser.add_argument("--native-lib", default=None, metavar="LIB.so", help="a -march=native build made elsewhere")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=LIB.so")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, library, inputs, threads, reps, out = args.worker
        worker(variant, library if library != "-" else None, Path(inputs), int(threads), int(reps), Path(out))
        return 0

    import audiosiam._C as C  # only to ask which levels this build has; workers load their own

    levels = list(reversed(C.cpu_capabilities()))
    if args.native_lib:
        native = str(Path(args.native_lib).resolve())
    else:
        print("building (or reusing) the -march=native build ...", flush=True)
        code = (
            f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import cpu_levels as c; c.native_library()"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
        native = "native"
    variants = [("native", native)] + [(level, "-") for level in levels]
    variants += [tuple(e.split("=", 1)) for e in args.extra]
    report = {"levels": levels, "threads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        make_inputs(inputs)
        tensors = torch.load(inputs)
        for threads in args.threads:
            best: dict = {}
            for r in range(args.rounds):
                for variant, library in variants:
                    out = Path(tmp) / f"{variant}.pt"
                    env = {k: v for k, v in os.environ.items() if k != "AUDIOSIAM_CPU_CAPABILITY"}
                    if library == "-":
                        env["AUDIOSIAM_CPU_CAPABILITY"] = variant
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--worker",
                            variant,
                            library,
                            str(inputs),
                            str(threads),
                            str(args.reps),
                            str(out),
                        ],
                        check=True,
                        env=env,
                    )
                    result = torch.load(out)
                    if r == 0:
                        for name, got in result["outputs"].items():
                            check(name, got, tensors)
                    for name, seconds in result["times"].items():
                        best.setdefault(variant, {})[name] = min(best.get(variant, {}).get(name, 1e9), seconds)
                print(f"  {threads} thread(s): round {r + 1} of {args.rounds} done", flush=True)
            report["threads"][threads] = best
            print_table(best, [v for v, _ in variants], threads)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def print_table(best: dict, variants: list[str], threads: int) -> None:
    names = [n for n in best["native"] if not n.startswith(("cdist", "faiss"))]
    print(f"\n{threads} thread(s); times in ms (best run); ratio = native time / variant time")
    print(f"{'case':<26}" + "".join(f"{v:>18}" for v in variants))
    for name in names:
        cells = [f"{best[v][name] * 1e3:9.2f} ({best['native'][name] / best[v][name]:4.2f})" for v in variants]
        print(f"{name:<26}" + "".join(f"{c:>18}" for c in cells))
    baselines = (("euclidean fwd+bwd 512", "cdist euclidean fwd+bwd 512"), ("knn 2k x 20k", "faiss knn 2k x 20k"))
    for ours, theirs in baselines:
        if theirs in best["native"]:
            ratios = "".join(f"{best[v][theirs] / best[v][ours]:>18.2f}" for v in variants)
            print(f"{theirs.split(' ')[0] + ' / ours, ' + ours.split(' ')[0]:<26}" + ratios)


if __name__ == "__main__":
    sys.exit(main())
