// Schema of the exact k-nearest-neighbour search. Kernels: csrc/ops/{cpu,cuda}/knn_kernel.*.
//
// Queries are processed block by block, so the full (queries x references) matrix never exists; each
// block's distances use the same exact definitions as pairwise_distance, and ties go to the lower
// reference index so results are deterministic.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("knn(Tensor query, Tensor reference, int k, str metric) -> (Tensor, Tensor)");
}
