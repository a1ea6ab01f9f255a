"""Build of audiosiam and its compiled core ``audiosiam._C``.

Environment switches (the only ones):
    AUDIOSIAM_CUDA=1   build the CUDA kernels (needs nvcc; CUDA_HOME defaults to /usr/local/cuda)
    AUDIOSIAM_CUDA=0   build the CPU kernels only, even where a GPU is present
    (unset)            CUDA kernels when torch sees a GPU, CPU only otherwise
    AUDIOSIAM_NO_EXTENSION=1   skip the compiled core; every op runs its pure-PyTorch reference
    AUDIOSIAM_PORTABLE=1       no -march=native (for wheels that travel to other machines)
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# torch's cpp_extension guesses CUDA_HOME from `which nvcc`; a wrapper script in /usr/local/bin then
# yields the wrong root. The toolkit's own folder is the right answer wherever it exists.
if not os.environ.get("CUDA_HOME") and os.path.isdir("/usr/local/cuda"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"


def extension_sources(with_cuda: bool) -> list[str]:
    """Sorted, repo-relative sources of the extension; cmake/sources.cmake globs the same set."""

    def rel(pattern: str) -> list[str]:
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))

    return rel("csrc/**/*.cpp") + (rel("csrc/**/*.cu") if with_cuda else [])


def _pip_cuda_include_dirs() -> list[str]:
    """Headers of the CUDA libraries that torch's wheels bring (cuBLAS, cuSPARSE, ...). ATen's CUDA headers
    include them, and a minimal CUDA toolkit (nvcc alone) does not ship them."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    return sorted({d for root in roots for d in glob.glob(os.path.join(root, "*", "include")) if os.path.isdir(d)})


def _want_cuda() -> bool:
    switch = os.environ.get("AUDIOSIAM_CUDA", "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    if switch:
        sys.exit(f"AUDIOSIAM_CUDA={switch!r}: expected 0, 1 or unset")
    import torch

    return torch.cuda.is_available()


def _extensions():
    if os.environ.get("AUDIOSIAM_NO_EXTENSION") == "1":
        print("audiosiam build: AUDIOSIAM_NO_EXTENSION=1, pure-PyTorch ops only")
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    with_cuda = _want_cuda()
    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        import torch

        if not torch.cuda.is_available():
            # No GPU to ask: Ampere and Hopper machine code, plus PTX that newer chips JIT-compile.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
    portable = os.environ.get("AUDIOSIAM_PORTABLE") == "1"
    cxx = ["-O3", "-fopenmp", "-DAUDIOSIAM_BUILD"] + ([] if portable else ["-march=native"])
    define_macros = [("AUDIOSIAM_WITH_CUDA", "1")] if with_cuda else []
    args = dict(
        name="audiosiam._C",
        sources=extension_sources(with_cuda),
        include_dirs=[os.path.join(ROOT, "csrc")] + (_pip_cuda_include_dirs() if with_cuda else []),
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]} if with_cuda else {"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )
    print(
        "audiosiam build: CUDA kernels {}; {} sources; cxx flags {}; CUDA_HOME={}; TORCH_CUDA_ARCH_LIST={}".format(
            "ON" if with_cuda else "OFF",
            len(args["sources"]),
            " ".join(cxx),
            os.environ.get("CUDA_HOME"),
            os.environ.get("TORCH_CUDA_ARCH_LIST", "(torch default)"),
        )
    )
    ext = CUDAExtension(**args) if with_cuda else CppExtension(**args)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
