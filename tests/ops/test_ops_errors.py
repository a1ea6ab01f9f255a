"""The same bad input gives the same audiosiam error on the compiled and the reference path."""

from __future__ import annotations

import pytest
import torch

from audiosiam.errors import AudiosiamError, ParameterError
from audiosiam.losses import TripletLoss
from audiosiam.ops import knn, pairwise_distance
from audiosiam.ops._extension import call, reference_ops


def nan_rows():
    x = torch.randn(6, 4)
    x[3, 1] = float("nan")
    return x


BAD_CALLS = {
    "knn NaN query row": lambda: knn(nan_rows(), torch.randn(5, 4), 2),
    "knn infinite reference row": lambda: knn(torch.randn(3, 4), torch.tensor([[0.0] * 4, [float("inf")] * 4]), 1),
    "pairwise dims differ": lambda: pairwise_distance(torch.randn(3, 4), torch.randn(3, 5)),
    "knn k too large": lambda: knn(torch.randn(3, 4), torch.randn(2, 4), 3),
    "triplet labels length": lambda: TripletLoss()(torch.randn(8, 4), torch.zeros(7, dtype=torch.long)),
}


def raised(fn):
    with pytest.raises(AudiosiamError) as info:
        fn()
    return type(info.value), str(info.value)


@pytest.mark.needs_extension
@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_compiled_and_reference_paths_raise_the_same_error(case):
    compiled = raised(BAD_CALLS[case])
    with reference_ops():
        reference = raised(BAD_CALLS[case])
    assert compiled == reference and compiled[0] is ParameterError


@pytest.mark.needs_extension
def test_kernel_argument_checks_surface_as_parameter_errors():
    # straight at the kernel boundary: csrc/common/checks.h raises a plain ValueError, call() translates it
    with pytest.raises(ParameterError, match="argument 'y'") as info:
        call("pairwise_distance", torch.randn(3, 4), torch.randn(3, 5), "euclidean")
    assert not str(info.value).startswith("audiosiam:")
    with pytest.raises(ParameterError, match="metric"):
        call("pairwise_distance", torch.randn(3, 4), torch.randn(3, 4), "chebyshev")
