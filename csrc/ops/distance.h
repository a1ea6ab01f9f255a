// Shared declarations of the distance ops (schemas in pairwise_distance.cpp and knn.cpp).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>

#include "../common/checks.h"

namespace audiosiam {

// Cosine distance 1 - <x/|x|, y/|y|>, 1 where a row is all zeros; any device (ATen ops, BLAS/cuBLAS).
at::Tensor cosine_distance(const at::Tensor& x, const at::Tensor& y);

// Backward of pairwise_distance for every metric, any device. L1 needs a sign-weighted sum that is not a
// matrix product; each device supplies it as `l1_grad(grad, x, y) -> (grad_x, grad_y)`.
using L1GradFn = std::tuple<at::Tensor, at::Tensor> (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&);
std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& y, const at::Tensor& dist,
                                                                   const std::string& metric, L1GradFn l1_grad);

// Backward of self_distance (x against itself) for every metric, any device: x is both sides, so its
// gradient is the sum of the two sides of pairwise_distance's: grad = diag(S 1) x - S x, one product, with
// S = (G + G^T) / D (0 where D = 0) for euclidean and 2 (G + G^T) for sqeuclidean. Each device supplies S
// as `symmetric_weights(grad, dist, squared)`; symmetric_weights_aten is the generic one.
using SymmetricWeightsFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&, bool);
at::Tensor symmetric_weights_aten(const at::Tensor& grad, const at::Tensor& dist, bool squared);
at::Tensor self_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                       const std::string& metric, L1GradFn l1_grad,
                                       SymmetricWeightsFn symmetric_weights);

// Arguments of knn, on any device: a (Q, D) and an (R, D) matrix, 1 <= k <= R, finite rows.
inline void check_knn_args(const at::Tensor& query, const at::Tensor& ref, int64_t k) {
  check_pair(query, "query", ref, "reference");
  TORCH_CHECK_VALUE(k >= 1 && k <= ref.size(0), "audiosiam: argument 'k': got ", k, ", expected 1 <= k <= ",
                    ref.size(0), " (the number of reference rows)");
  check_finite_rows(query, "query");
  check_finite_rows(ref, "reference");
}

}  // namespace audiosiam
