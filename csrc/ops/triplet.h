// Checks and the per-anchor math shared by the CPU and CUDA kernels of the triplet ops.
#pragma once

#include <ATen/ATen.h>

#include "../common/checks.h"

namespace audiosiam {

// One int64 label per row of `rows` (named `rows_name` in messages), on the same device.
inline void check_labels(const at::Tensor& labels, const at::Tensor& rows, const char* rows_name) {
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == rows.size(0), "audiosiam: argument 'labels': expected shape (",
                    rows.size(0), ",), got ", labels.sizes());
  TORCH_CHECK_VALUE(labels.scalar_type() == at::kLong, "audiosiam: argument 'labels': expected int64, got ",
                    labels.scalar_type());
  TORCH_CHECK_VALUE(labels.device() == rows.device(), "audiosiam: argument 'labels': is on ", labels.device(),
                    " but '", rows_name, "' is on ", rows.device());
}

inline void check_batch(const at::Tensor& embeddings, const at::Tensor& labels) {
  check_matrix(embeddings, "embeddings");
  check_labels(labels, embeddings, "embeddings");
}

// Arguments of triplet_batch_all: a square distance matrix and one label per row.
inline void check_distance_batch(const at::Tensor& dist, const at::Tensor& labels) {
  check_matrix(dist, "dist");
  TORCH_CHECK_VALUE(dist.size(0) == dist.size(1), "audiosiam: argument 'dist': expected a square (B, B) matrix, got ",
                    dist.sizes());
  check_labels(labels, dist, "dist");
}

// The outputs of triplet_batch_all for a batch of b, allocated alike on every device.
struct BatchAllOutputs {
  at::Tensor term_sum, valid, active, slope;

  BatchAllOutputs(const at::Tensor& dist, const at::Tensor& labels)
      : term_sum(at::empty({dist.size(0)}, dist.options())),
        valid(at::empty({dist.size(0)}, labels.options())),
        active(at::empty({dist.size(0)}, labels.options())),
        slope(at::zeros({dist.size(0), dist.size(0)}, dist.options())) {}

  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> tuple() const { return {term_sum, valid, active, slope}; }
};

// One negative candidate for the positive pair (a, p) of semi-hard mining: keeps the nearest semi-hard
// negative and the nearest negative overall, scanning n in increasing order (strict < keeps the lower
// index on ties).
template <typename scalar_t>
struct SemiHardChoice {
  scalar_t semi = 0, hard = 0;
  int64_t semi_index = -1, hard_index = -1;

  C10_HOST_DEVICE void offer(scalar_t d_ap, scalar_t d_an, int64_t n, double margin) {
    if (hard_index < 0 || d_an < hard) hard = d_an, hard_index = n;
    if (d_an > d_ap && d_an < d_ap + static_cast<scalar_t>(margin) && (semi_index < 0 || d_an < semi))
      semi = d_an, semi_index = n;
  }
  C10_HOST_DEVICE int64_t choice() const { return semi_index >= 0 ? semi_index : hard_index; }
};

// d(term)/d(d_ap) for one anchor (d(term)/d(d_an) is its negative).
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t term_slope(scalar_t d_ap, scalar_t d_an, double margin, double scale, bool soft) {
  const scalar_t z = static_cast<scalar_t>(scale) * (d_ap - d_an);
  if (soft) return static_cast<scalar_t>(scale) / (scalar_t(1) + exp(-z));  // sigmoid(z) * scale
  return (z + static_cast<scalar_t>(margin) > 0) ? static_cast<scalar_t>(scale) : scalar_t(0);
}

template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t term_value(scalar_t d_ap, scalar_t d_an, double margin, double scale, bool soft) {
  const scalar_t z = static_cast<scalar_t>(scale) * (d_ap - d_an);
  if (soft) return z > 20 ? z : log1p(exp(z));  // softplus, without overflow
  const scalar_t h = z + static_cast<scalar_t>(margin);
  return h > 0 ? h : scalar_t(0);
}

}  // namespace audiosiam
