// Schema of the semi-hard negative mining op (FaceNet).
//
// triplet_semi_hard_negatives(dist (B, B), labels (B,), margin) -> negative (B, B) int64: for every
// positive pair (a, p) (p != a, same label), the nearest negative n that is farther than the positive but
// within the margin (d(a, p) < d(a, n) < d(a, p) + margin); where there is none, the nearest negative
// of all. Ties go to the lower index. Cells that are not positive pairs, and anchors with no negative,
// get -1. The op only selects; the loss gathers d(a, n) from `dist` in PyTorch, so gradients flow
// through that gather (audiosiam/losses/functional.py).

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("triplet_semi_hard_negatives(Tensor dist, Tensor labels, float margin) -> Tensor");
}
