"""One tester for every audiosiam op, in the spirit of torchvision's ``RoIOpTester``.

A subclass describes one public op of ``audiosiam.ops``: how to make its inputs (:meth:`OpTester.make`),
how to call it (:meth:`OpTester.call`), its definition in float64 (:meth:`OpTester.expected`, from
``audiosiam.ops._reference``), its variants (metrics, margins, ...) and the compiled ops behind it with
sample arguments for ``opcheck`` (forward *and* private backward ops). The tests below then run for it
on every device, on the compiled and the reference path, the compiled CPU path at every CPU level this
build and CPU have (``compiled`` runs the process's level, ``compiled-avx2`` and ``compiled-default`` the
lower ones, switched with the test-only ``audiosiam._C._set_cpu_capability``: one process instead of a
torch import per level):

* values against the float64 definition, in float32, float64, float16 and bfloat16;
* non-contiguous inputs give what contiguous ones give;
* empty inputs give empty outputs, not errors;
* ``gradcheck`` in float64 (differentiable ops), and compiled gradients equal to the reference's;
* ``torch.library.opcheck`` of every compiled op (schema, fake kernel, autograd registration);
* ``torch.compile(fullgraph=True)`` traces the public op and gives the eager values.

What is special to one op (ties, screening, exact zeros, by-hand values) stays in its own test file.
"""

from __future__ import annotations

import abc
import contextlib

import pytest
import torch

from audiosiam.ops import _extension, has_ops
from audiosiam.ops._extension import reference_ops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda)]


def cpu_levels() -> tuple[str, list[str]]:
    """The CPU level the kernels run at in this process, and every level this build and CPU have (highest
    first); ``("", [])`` without the compiled core."""
    module = _extension._load()[0]
    if module is None:
        return "", []
    return module.cpu_capability(), list(reversed(module.cpu_capabilities()))


ACTIVE_CPU_LEVEL, CPU_LEVELS = cpu_levels()
COMPILED_PATHS = ["compiled"] + [f"compiled-{level}" for level in CPU_LEVELS if level != ACTIVE_CPU_LEVEL]
PATHS = COMPILED_PATHS + ["reference"]


@contextlib.contextmanager
def at_cpu_level(level: str):
    """Run the CPU kernels of ``level`` inside this block (the test-only switch), then the level before."""
    module = _extension._load()[0]
    before = module._set_cpu_capability(level)
    try:
        yield
    finally:
        module._set_cpu_capability(before)


FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Half-precision inputs are computed in float32; against the float64 definition of the same (rounded)
# inputs, only float32 accumulation and the final rounding of the output remain.
TOLERANCES = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (2e-2, 2e-2),
    torch.complex64: (1e-4, 1e-4),
    torch.complex128: (1e-7, 1e-9),
}


def on_path(path: str, device: str = "cpu"):
    """The context that selects ``path``; skips the compiled path where it cannot run, and the CPU levels
    below the process's on CUDA (whose kernels have one)."""
    if path == "reference":
        return reference_ops()
    if not has_ops():
        pytest.skip("audiosiam._C is not loaded")
    if path == "compiled":
        return contextlib.nullcontext()
    if device != "cpu":
        pytest.skip("CPU levels: the CPU kernels only")
    return at_cpu_level(path.removeprefix("compiled-"))


def as_tuple(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def non_contiguous(t):
    """The same values in memory with gaps: every tensor of two or more dims gets a strided last dim."""
    if not torch.is_tensor(t) or t.ndim == 0 or t.numel() == 0:
        return t
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    out = wide[..., ::2]
    assert not out.is_contiguous() and torch.equal(out, t)
    return out


def is_float(t) -> bool:
    return torch.is_tensor(t) and (t.dtype.is_floating_point or t.dtype.is_complex)


class OpTester(abc.ABC):
    """Base class: subclasses set the attributes and implement the four abstract methods below. A selection op
    (not differentiable) sets ``test_gradcheck_float64 = test_compiled_gradients_match_the_reference = None``."""

    dtypes = FLOAT_DTYPES  # the input dtypes the op accepts
    rows = 24  # the size ``make`` is asked for in value tests; gradcheck uses ``grad_rows``
    grad_rows = 7

    def variants(self) -> list[dict]:
        """The non-tensor settings to test, each passed to :meth:`make` and :meth:`call`."""
        return [{}]

    def pytest_generate_tests(self, metafunc):
        """Each dtype and each variant its own test, with an id that names it: one failure hides no other."""
        if "dtype" in metafunc.fixturenames:
            metafunc.parametrize("dtype", self.dtypes, ids=[str(d).removeprefix("torch.") for d in self.dtypes])
        if "variant" in metafunc.fixturenames:
            variants = self.variants()
            ids = ["-".join(f"{k}={v}" for k, v in variant.items()) or "default" for variant in variants]
            metafunc.parametrize("variant", variants, ids=ids)

    @abc.abstractmethod
    def make(self, device: str, dtype: torch.dtype, rows: int, **variant) -> tuple:
        """The op's tensor inputs (a fixed seed per call)."""

    @abc.abstractmethod
    def call(self, *tensors, **variant):
        """The public op on these inputs."""

    @abc.abstractmethod
    def expected(self, *tensors, **variant):
        """The definition, from ``audiosiam.ops._reference``, on the inputs promoted to float64."""

    @abc.abstractmethod
    def opcheck_samples(self, device: str) -> list[tuple]:
        """``(op overload, args)`` for every compiled op behind this one, private backward ops included."""

    # ------------------------------------------------------------------------------------ helpers
    @staticmethod
    def promote(t):
        if not torch.is_tensor(t):
            return t
        if t.dtype.is_complex:
            return t.to(torch.complex128)
        return t.double() if t.dtype.is_floating_point else t

    def compare(self, got, want, dtype, what=""):
        got, want = as_tuple(got), as_tuple(want)
        assert len(got) == len(want), what
        rtol, atol = TOLERANCES[dtype]
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, f"{what} output {i}: shape {tuple(g.shape)} != {tuple(w.shape)}"
            if is_float(g):
                torch.testing.assert_close(
                    self.promote(g).cpu(),
                    self.promote(w).cpu(),
                    rtol=rtol,
                    atol=atol,
                    msg=lambda m: f"{what} output {i}: {m}",
                )
            else:
                assert torch.equal(g.cpu(), w.cpu()), f"{what} output {i} differs"

    # -------------------------------------------------------------------------------------- tests
    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("path", PATHS)
    def test_values_match_the_definition(self, device, path, dtype, variant):
        tensors = self.make(device, dtype, self.rows, **variant)
        with on_path(path, device):
            got = self.call(*tensors, **variant)
        want = self.expected(*(self.promote(t) for t in tensors), **variant)
        self.compare(got, want, dtype, f"{dtype} {variant}")

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("path", PATHS)
    def test_non_contiguous_inputs(self, device, path, variant):
        tensors = self.make(device, self.dtypes[0], self.rows, **variant)
        with on_path(path, device):
            want = self.call(*tensors, **variant)
            got = self.call(*(non_contiguous(t) for t in tensors), **variant)
        self.compare(got, want, self.dtypes[0], f"non-contiguous {variant}")

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("path", PATHS)
    def test_empty_inputs(self, device, path, variant):
        tensors = self.make(device, self.dtypes[0], 0, **variant)
        with on_path(path, device):
            out = as_tuple(self.call(*tensors, **variant))
        assert all(o.shape[0] == 0 for o in out), f"{variant}: {[tuple(o.shape) for o in out]}"

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("path", PATHS)
    def test_gradcheck_float64(self, device, path, variant):
        double = torch.complex128 if self.dtypes[0].is_complex else torch.float64
        tensors = self.make(device, double, self.grad_rows, **variant)
        slots = [i for i, t in enumerate(tensors) if is_float(t)]

        def first_output(*floats):
            args = list(tensors)
            for i, f in zip(slots, floats):
                args[i] = f
            return as_tuple(self.call(*args, **variant))[0]

        floats = [tensors[i].detach().clone().requires_grad_() for i in slots]
        with on_path(path, device):
            assert torch.autograd.gradcheck(first_output, floats), variant

    @pytest.mark.needs_extension
    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("path", COMPILED_PATHS)
    def test_compiled_gradients_match_the_reference(self, device, path, variant):
        tensors = self.make(device, self.dtypes[0], self.rows, **variant)
        grads = []
        for side in (path, "reference"):
            floats = [t.detach().clone().requires_grad_() if is_float(t) else t for t in tensors]
            with on_path(side, device):
                out = as_tuple(self.call(*floats, **variant))[0]
            upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
            leaves = [f for f in floats if is_float(f)]
            grads.append(torch.autograd.grad(out, leaves, upstream))
        self.compare(grads[0], grads[1], self.dtypes[0], f"gradients {variant}")

    @pytest.mark.needs_extension
    @pytest.mark.parametrize("device", DEVICES)
    def test_opcheck(self, device):
        for op, args in self.opcheck_samples(device):
            torch.library.opcheck(op, args)

    @pytest.mark.needs_extension
    def test_torch_compile_fullgraph(self):
        torch._dynamo.reset()
        for variant in self.variants()[:1]:
            tensors = self.make("cpu", self.dtypes[0], self.rows, **variant)
            compiled = torch.compile(lambda *t: self.call(*t, **variant), backend="eager", fullgraph=True)
            self.compare(compiled(*tensors), self.call(*tensors, **variant), self.dtypes[0], "compiled graph")
