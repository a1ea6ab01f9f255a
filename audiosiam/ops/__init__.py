"""audiosiam's custom ops: compiled C++/CUDA kernels with pure-PyTorch references.

Public functions validate their arguments, then call ``torch.ops.audiosiam.*`` when the compiled
extension is loaded (see :mod:`._extension`) and the reference otherwise.
"""

from ._extension import ExtensionFallbackWarning, assert_has_ops, build_info, has_ops, reference_ops
from .distance import METRICS, knn, paired_distance, pairwise_distance, parse_metric
from .spectral import mel_power

__all__ = [
    "METRICS",
    "ExtensionFallbackWarning",
    "assert_has_ops",
    "build_info",
    "has_ops",
    "knn",
    "mel_power",
    "paired_distance",
    "pairwise_distance",
    "parse_metric",
    "reference_ops",
]
