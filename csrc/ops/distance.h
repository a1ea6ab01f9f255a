// Shared declarations of the distance ops (schemas in pairwise_distance.cpp and knn.cpp).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>

#include "../common/checks.h"

namespace audiosiam {

// Cosine distance 1 - <x/|x|, y/|y|>, 1 where a row is all zeros; any device (ATen ops, BLAS/cuBLAS).
at::Tensor cosine_distance(const at::Tensor& x, const at::Tensor& y);

// The same for x against itself, exactly symmetric (the upper triangle mirrored below the diagonal) with an
// exact diagonal (0; 1 for an all-zero row). A BLAS product does not promise (i, j) == (j, i) bit for bit
// (its blocking and FMA order differ between the two; on a 2-core AVX-512 Xeon, 3 rows of 32 differ by one
// ulp), and self_distance promises it.
at::Tensor cosine_self_distance(const at::Tensor& x);

// The device-specific pieces of the distance backward; the rest is ATen, shared by every device.
struct BackwardKernels {
  // L1 has no matrix-product form: (grad_x, grad_y) of the sign-weighted sums.
  std::tuple<at::Tensor, at::Tensor> (*l1_grad)(const at::Tensor& g, const at::Tensor& x, const at::Tensor& y);
  // W = G / D (0 where D = 0), or 2 G for squared distances; with `symmetric`, G + G^T in place of G.
  at::Tensor (*weights)(const at::Tensor& g, const at::Tensor& dist, bool squared, bool symmetric);
};

// The generic `weights`, in ATen ops (three passes over the matrix where a fused kernel needs one).
at::Tensor distance_weights_aten(const at::Tensor& g, const at::Tensor& dist, bool squared, bool symmetric);

// Backward of pairwise_distance for every metric:
//   grad_x = diag(W 1) x - W y,   grad_y = diag(W^T 1) y - W^T x.
std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& y, const at::Tensor& dist,
                                                                   const std::string& metric,
                                                                   const BackwardKernels& kernels);

// Backward of self_distance (x against itself): x is both sides, so its gradient is the sum of the two
// sides of pairwise_distance's, grad = diag(S 1) x - S x with S the symmetric weights: one product.
at::Tensor self_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                       const std::string& metric, const BackwardKernels& kernels);

// Arguments of knn, on any device: a (Q, D) and an (R, D) matrix, 1 <= k <= R, finite rows.
inline void check_knn_args(const at::Tensor& query, const at::Tensor& ref, int64_t k) {
  check_pair(query, "query", ref, "reference");
  TORCH_CHECK_VALUE(k >= 1 && k <= ref.size(0), "audiosiam: argument 'k': got ", k, ", expected 1 <= k <= ",
                    ref.size(0), " (the number of reference rows)");
  check_finite_rows(query, "query");
  check_finite_rows(ref, "reference");
}

}  // namespace audiosiam
