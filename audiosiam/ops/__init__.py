"""audiosiam's custom ops: compiled C++/CUDA kernels with pure-PyTorch references.

One pattern for every op, as torchvision's ``ops``: the public function (``distance.py``, ``spectral.py``,
``losses.py``) validates its arguments and decides, calling ``torch.ops.audiosiam.<op>`` through
``_extension.call`` when the compiled extension is loaded and serves the device (``use_compiled``), and
its pure-PyTorch reference in ``_reference.py`` otherwise. Every compiled op's fake kernel and gradient
is registered with ``torch.library`` in ``_registrations.py``.
"""

from .._deprecated import withdrawn_exports
from ._extension import ExtensionFallbackWarning, build_info, has_ops
from .distance import knn, paired_distance, pairwise_distance
from .losses import triplet_batch_all, triplet_batch_hard
from .spectral import mel_power

__all__ = [
    "pairwise_distance",
    "paired_distance",
    "knn",
    "triplet_batch_all",
    "triplet_batch_hard",
    "mel_power",
    "has_ops",
    "build_info",
    "ExtensionFallbackWarning",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "METRICS": "audiosiam.ops.distance",
        "parse_metric": "audiosiam.ops.distance",
        "reference_ops": "audiosiam.ops._extension",
        "triplet_semi_hard_negatives": "audiosiam.ops.losses",
    },
)
