// Schema of the batch-all triplet mining op.
//
// triplet_batch_all(dist (B, B), labels (B,), margin, soft) visits every valid triplet (a, p, n) of the
// batch (p != a shares a's label, n does not) and returns, per anchor a,
//     term_sum[a] = sum over its triplets of  max(0, d(a, p) - d(a, n) + margin)   (softplus(d(a,p) - d(a,n)) when soft)
//     valid[a]    = how many triplets it has,  active[a] = how many have a term > 0,
// and slope (B, B): slope[a, p] = sum over n of d(term)/d(d(a, p)), slope[a, n] = -sum over p of
// d(term)/d(d(a, n)), zero elsewhere. The loss's gradient with respect to dist is slope scaled by the
// reduction, so the backward needs no B^3 anything: memory is O(B^2), time O(B * positives * B).
// term_sum is differentiable with respect to dist: its gradient, grad_term_sum[:, None] * slope, is
// registered in Python (audiosiam/ops/_registrations.py); slope carries no gradient.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("triplet_batch_all(Tensor dist, Tensor labels, float margin, bool soft) "
        "-> (Tensor term_sum, Tensor valid, Tensor active, Tensor slope)");
}
