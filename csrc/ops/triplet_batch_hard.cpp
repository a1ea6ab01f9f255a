// Schema of the fused batch-hard triplet loss.
//
// triplet_batch_hard(embeddings (B, D), labels (B,), margin, scale, squared, soft) computes, for every
// anchor, its farthest positive and nearest negative straight from the embeddings (no B x B matrix is
// stored: O(B) memory), and the per-anchor term
//     hinge:     max(0, scale * (d(a, p) - d(a, n)) + margin)
//     soft:      softplus(scale * (d(a, p) - d(a, n)))
// with d the euclidean distance, or its square when `squared`. Ties go to the lower index. Anchors
// without a positive or a negative get index -1 and term 0. The backward (private op) is sparse: it
// touches only the 2B selected pairs, O(B D), and a zero distance has subgradient 0.
// Cosine distance on unit vectors is 0.5 * squared euclidean, so the Python layer serves it with
// squared=True, scale=0.5 after normalising.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def(
      "triplet_batch_hard(Tensor embeddings, Tensor labels, float margin, float scale, bool squared, bool soft) "
      "-> (Tensor terms, Tensor positive, Tensor negative, Tensor d_ap, Tensor d_an)");
  m.def(
      "_triplet_batch_hard_backward(Tensor grad_terms, Tensor embeddings, Tensor positive, Tensor negative, "
      "Tensor d_ap, Tensor d_an, float margin, float scale, bool squared, bool soft) -> Tensor");
}
