"""Build of audiosiam and its compiled core ``audiosiam._C``.

Environment switches (the only ones):
    AUDIOSIAM_CUDA=1   build the CUDA kernels (needs nvcc; CUDA_HOME defaults to /usr/local/cuda)
    AUDIOSIAM_CUDA=0   build the CPU kernels only, even where a GPU is present
    (unset)            CUDA kernels when torch sees a GPU, CPU only otherwise
    AUDIOSIAM_NO_EXTENSION=1   skip the compiled core; every op runs its pure-PyTorch reference

The CPU kernels (csrc/ops/cpu/) are compiled once per CPU level and chosen at run time (csrc/ops/cpu/kernels.h),
so one build runs on every x86-64 CPU; nothing is compiled for the build machine's own CPU (no -march=native).
"""

from __future__ import annotations

import glob
import os
import platform
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))

# torch's cpp_extension guesses CUDA_HOME from `which nvcc`; a wrapper script in /usr/local/bin then
# yields the wrong root. The toolkit's own folder is the right answer wherever it exists.
if not os.environ.get("CUDA_HOME") and os.path.isdir("/usr/local/cuda"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"


def _rel(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def extension_sources(with_cuda: bool) -> list[str]:
    """Sorted, repo-relative sources compiled once each: every .cpp under csrc/ but the CPU kernels and, with
    CUDA, every .cu. cmake/sources.cmake globs the same sets."""
    per_level = set(cpu_level_sources())
    return [s for s in _rel("csrc/**/*.cpp") if s not in per_level] + (_rel("csrc/**/*.cu") if with_cuda else [])


def cpu_level_sources() -> list[str]:
    """The CPU kernels: compiled once per CPU level, as one translation unit that includes them all."""
    return _rel("csrc/ops/cpu/*.cpp")


# CPU levels (csrc/ops/cpu/kernels.h): the common flags pin the baseline (a compiler's own default may be
# higher, as on RHEL 9), and each level adds its instruction sets; csrc/ops/cpu_dispatch.cpp checks
# exactly these at run time. Elsewhere than x86-64, one level: the common flags.
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
BASELINE_FLAGS = ["-march=x86-64", "-mtune=generic"] if IS_X86_64 else []
CPU_LEVEL_FLAGS = {"DEFAULT": []}
if IS_X86_64:
    CPU_LEVEL_FLAGS["AVX2"] = ["-mavx2", "-mfma"]
    CPU_LEVEL_FLAGS["AVX512"] = ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]


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
    # -fno-trapping-math: nothing of ours reads the floating-point exception flags, and without it the
    # compiler keeps a branch around every select of a comparison or a division (a > 0 ? b / a : 0) where
    # the level has no masked instructions, so the AVX2 and baseline kernels' loops stay scalar. It changes
    # no value (no reassociation, no change of rounding).
    cxx = ["-O3", "-fno-trapping-math", "-fopenmp", "-DAUDIOSIAM_BUILD"] + BASELINE_FLAGS
    define_macros = [("AUDIOSIAM_WITH_CUDA", "1")] if with_cuda else []
    if len(CPU_LEVEL_FLAGS) > 1:
        define_macros.append(("AUDIOSIAM_CPU_DISPATCH", "1"))
    args = dict(
        name="audiosiam._C",
        sources=extension_sources(with_cuda),
        include_dirs=[os.path.join(ROOT, "csrc")] + (_pip_cuda_include_dirs() if with_cuda else []),
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]} if with_cuda else {"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )
    print(
        "audiosiam build: CUDA kernels {}; {} sources; cxx flags {}; CPU levels {}; CUDA_HOME={}; "
        "TORCH_CUDA_ARCH_LIST={}".format(
            "ON" if with_cuda else "OFF",
            len(args["sources"]),
            " ".join(cxx),
            ", ".join(f"{level} ({' '.join(flags) or 'common flags'})" for level, flags in CPU_LEVEL_FLAGS.items()),
            os.environ.get("CUDA_HOME"),
            os.environ.get("TORCH_CUDA_ARCH_LIST", "(torch default)"),
        )
    )
    ext = CUDAExtension(**args) if with_cuda else CppExtension(**args)
    return [ext], {"build_ext": _with_cpu_levels(BuildExtension).with_options(use_ninja=True)}


def _with_cpu_levels(base):
    """``base`` (torch's BuildExtension) that also compiles the CPU kernels once per level of
    ``CPU_LEVEL_FLAGS``: one generated file includes :func:`cpu_level_sources` (their headers are parsed
    once per level, not once per file and level), compiled into a folder per level with the extension's
    flags plus the level's. Those objects are linked after the extension's own, lowest level first, so
    that of the copies of a shared inline function the linker keeps the lowest level's
    (csrc/ops/cpu/kernels.h)."""

    class BuildWithCpuLevels(base):
        def build_extension(self, ext):
            os.makedirs(self.build_temp, exist_ok=True)
            unity = os.path.join(os.path.abspath(self.build_temp), "cpu_kernels.cpp")
            text = "// Generated by setup.py: the CPU kernels as one translation unit, compiled once per level.\n"
            text += "".join(f'#include "{os.path.join(ROOT, s)}"\n' for s in cpu_level_sources())
            if not os.path.isfile(unity) or open(unity).read() != text:  # unchanged: no recompile
                with open(unity, "w") as f:
                    f.write(text)
            objects = []
            for level, flags in CPU_LEVEL_FLAGS.items():
                cxx = ext.extra_compile_args["cxx"] + flags + [f"-DAUDIOSIAM_CPU_CAPABILITY={level}"]
                objects += self.compiler.compile(
                    [unity],
                    output_dir=os.path.join(self.build_temp, f"cpu_{level.lower()}"),
                    macros=ext.define_macros,
                    include_dirs=ext.include_dirs,
                    debug=self.debug,
                    extra_postargs={**ext.extra_compile_args, "cxx": cxx},
                    depends=ext.depends,
                )
            ext.extra_objects = list(ext.extra_objects or []) + objects
            ext.depends = list(ext.depends or []) + objects  # a kernel recompiled: link again
            super().build_extension(ext)

    return BuildWithCpuLevels


class BuildPyWithExamples(build_py):
    """Also copies examples/ (the README's example clips) into the built package as audiosiam/examples/, so
    that a wheel carries them (``audiosiam info`` says where they are). An editable install reads the
    source tree's examples/ instead, and gets no copy."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False) and os.path.isdir(os.path.join(ROOT, "examples")):
            self.copy_tree(os.path.join(ROOT, "examples"), os.path.join(self.build_lib, "audiosiam", "examples"))


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass={**cmdclass, "build_py": BuildPyWithExamples})
