"""CPU levels: one build carries the CPU kernels for baseline x86-64, AVX2 and AVX-512 and runs the highest
this CPU has (csrc/ops/cpu/kernels.h). What each level computes is tested by the op tests, at every level;
here: how a level is chosen, and that nothing above the baseline runs before one is chosen."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from op_tester import ACTIVE_CPU_LEVEL, CPU_LEVELS

pytestmark = pytest.mark.needs_extension

LEVELS = ["default", "avx2", "avx512"]


def run_python(code: str, level: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUDIOSIAM_CPU_CAPABILITY"}
    if level is not None:
        env["AUDIOSIAM_CPU_CAPABILITY"] = level
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def cpuinfo_levels() -> list[str]:
    """The levels /proc/cpuinfo's flags allow, by the same rule as csrc/ops/cpu_dispatch.cpp."""
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    levels = ["default"]
    if {"avx2", "fma"} <= flags:
        levels.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            levels.append("avx512")
    return levels


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file(), reason="x86-64 Linux")
def test_the_highest_level_this_cpu_has_runs():
    assert sorted(CPU_LEVELS, key=LEVELS.index) == cpuinfo_levels()
    if not os.environ.get("AUDIOSIAM_CPU_CAPABILITY"):
        assert ACTIVE_CPU_LEVEL == CPU_LEVELS[0]


CODE = (
    "import warnings, torch\n"
    "import audiosiam._C as C\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always')\n"
    "    d = torch.ops.audiosiam.pairwise_distance(torch.zeros(2, 16), torch.ones(3, 16), 'sqeuclidean')\n"
    "assert torch.equal(d, torch.full((2, 3), 16.0)), d\n"
    "print(C.cpu_capability(), '|'.join(str(m.message) for m in w))\n"
)


@pytest.mark.parametrize("level", LEVELS)
def test_the_environment_variable_chooses_a_level_never_above_the_cpus(level):
    """AUDIOSIAM_CPU_CAPABILITY runs a level this CPU has; one above it runs the highest it has, with a
    warning (the same image may run on older machines of a cluster)."""
    result = run_python(CODE, level)
    assert result.returncode == 0, result.stderr
    ran, warning = result.stdout.strip().split(" ", 1) if " " in result.stdout.strip() else (result.stdout.strip(), "")
    if level in CPU_LEVELS:
        assert ran == level and not warning
    else:
        assert ran == CPU_LEVELS[0] and f"AUDIOSIAM_CPU_CAPABILITY={level} asks for more" in warning


@pytest.mark.slow
def test_a_name_that_is_no_level_is_an_error_that_says_what_is():
    result = run_python(CODE, "avx3")
    assert result.returncode != 0
    assert "AUDIOSIAM_CPU_CAPABILITY='avx3' is not a CPU level; expected default, avx2 or avx512" in result.stderr
    info = run_python("import torch, audiosiam._C as C; print(C.build_info()['cpu_capability'])", "avx3")
    assert info.returncode == 0 and "error: audiosiam: AUDIOSIAM_CPU_CAPABILITY='avx3'" in info.stdout


def test_the_test_only_switch_refuses_a_level_this_cpu_lacks():
    from audiosiam.ops import _extension

    module = _extension._load()[0]
    with pytest.raises(ValueError, match="level='avx3' is not a CPU level"):
        module._set_cpu_capability("avx3")
    missing = [level for level in LEVELS if level not in CPU_LEVELS]
    if missing:
        with pytest.raises(ValueError, match="this CPU or build runs at most"):
            module._set_cpu_capability(missing[0])
    assert module.cpu_capability() == ACTIVE_CPU_LEVEL


# Instructions beyond baseline x86-64 (SSE2): any VEX/EVEX-encoded one (AVX, AVX2, FMA, AVX-512: mnemonics
# that begin with v), 256- and 512-bit registers, mask registers, and the scalar extensions that come with
# the levels' flags (-msse4.2, implied by -mavx, brings popcnt).
BEYOND_BASELINE = re.compile(
    r"^\s*[0-9a-f]+:\s+(v\w+|popcnt|lzcnt|tzcnt|andn|bextr|blsi|blsr|bzhi|pdep|pext|sarx|shlx|shrx|rorx|movbe|crc32)\b"
    r"|%[yz]mm|%k[0-7]"
)
FUNCTION = re.compile(r"^([0-9a-f]+) <(.*)>:$")
# a call or jump to a function, or its address taken (lea ... # address <name>)
REFERENCE = re.compile(r"(?:(?:call|jmp)\w*\s+|#\s*)([0-9a-f]+) <(.*?)(\+0x[0-9a-f]+)?>$")
# demangled, or mangled where objdump leaves a name as it is (OpenMP's outlined ._omp_fn.0.cold parts)
LEVEL_FUNCTION = re.compile(r"audiosiam::cpu::AVX(2|512)::|9audiosiam3cpu(4AVX2|6AVX512)")


def above_baseline_outside_the_levels(library: str) -> dict[str, str]:
    """Functions outside the AVX2/AVX512 namespaces through which code above the baseline may run without a
    level chosen, each with its first such instruction. Such code outside the namespaces is allowed where
    only level code reaches it (local clones, instantiations that only level code uses): every function
    outside the namespaces that holds it, or calls such a function, must have direct callers or address
    takers in the listing; one that has none (a static initialiser, an entry point) could run first."""
    listing = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", library], capture_output=True, text=True, check=True
    ).stdout
    names, first_beyond, callers, current = {}, {}, {}, None
    for line in listing.splitlines():
        header = FUNCTION.match(line)
        if header:
            current = int(header.group(1), 16)
            names[current] = header.group(2)
        elif current is not None:
            if BEYOND_BASELINE.search(line):
                first_beyond.setdefault(current, line.strip())
            reference = REFERENCE.search(line)
            if reference and not reference.group(3) and int(reference.group(1), 16) != current:
                callers.setdefault(int(reference.group(1), 16), set()).add(current)
    by_name: dict[str, list[int]] = {}
    for address, name in names.items():
        by_name.setdefault(name, []).append(address)
    for plt_entry, name in names.items():  # a call through the PLT may reach any copy of that name
        if name.endswith("@plt"):
            for address in by_name.get(name.removesuffix("@plt"), []):
                callers.setdefault(address, set()).update(callers.get(plt_entry, ()))
    assert len(names) > 200  # the whole library was read
    tainted = {a for a in first_beyond if not LEVEL_FUNCTION.search(names[a])}
    frontier = list(tainted)
    while frontier:  # what calls tainted code outside the levels is tainted too
        for caller in callers.get(frontier.pop(), ()):
            if caller not in tainted and not LEVEL_FUNCTION.search(names[caller]):
                tainted.add(caller)
                frontier.append(caller)
    return {names[a]: first_beyond.get(a, "(calls such code)") for a in tainted if not callers.get(a)}


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("objdump") is None, reason="x86-64 and objdump")
def test_nothing_above_the_baseline_runs_outside_the_avx2_and_avx512_kernels():
    """Every level's objects emit their own copies of the inline functions of shared headers (the C++
    library, ATen), under one name; the linker keeps one, and it must not be an AVX copy that baseline code
    calls, or a CPU without AVX would run AVX code before (or without) choosing a level. The builds link
    the baseline objects first (setup.py, CMakeLists.txt); this reads the built library's machine code to
    prove it: code above the baseline outside the level namespaces (local clones, instantiations only level
    code uses) is reached from level code alone."""
    import audiosiam._C

    exposed = above_baseline_outside_the_levels(audiosiam._C.__file__)
    assert not exposed, f"{len(exposed)} functions outside the AVX2/AVX512 kernels run AVX code: " + "; ".join(
        f"{name}: {line}" for name, line in list(exposed.items())[:5]
    )
