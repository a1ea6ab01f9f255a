// Argument checks shared by every op. Each message names the argument, what was given and what was
// expected, so an error from deep inside a training step still says which tensor to fix.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>

namespace audiosiam {

// The distance metrics every op understands; names match audiosiam.ops.distance.METRICS.
enum class Metric { Euclidean, SqEuclidean, Cosine, L1 };

inline Metric parse_metric(const std::string& name) {
  if (name == "euclidean") return Metric::Euclidean;
  if (name == "sqeuclidean") return Metric::SqEuclidean;
  if (name == "cosine") return Metric::Cosine;
  if (name == "l1") return Metric::L1;
  TORCH_CHECK_VALUE(false, "audiosiam: argument 'metric': got '", name,
                    "', expected one of 'euclidean', 'sqeuclidean', 'cosine', 'l1'");
}

inline void check_matrix(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 2, "audiosiam: argument '", name, "': expected a 2-D (rows, dim) tensor, got shape ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "audiosiam: argument '", name,
                    "': expected float32 or float64 (the Python wrapper upcasts float16/bfloat16), got ",
                    t.scalar_type());
}

inline void check_pair(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  check_matrix(a, a_name);
  check_matrix(b, b_name);
  TORCH_CHECK_VALUE(a.size(1) == b.size(1), "audiosiam: argument '", b_name, "': has dim ", b.size(1), " but '",
                    a_name, "' has dim ", a.size(1), "; they must match");
  TORCH_CHECK_VALUE(a.scalar_type() == b.scalar_type(), "audiosiam: argument '", b_name, "': has dtype ",
                    b.scalar_type(), " but '", a_name, "' has ", a.scalar_type(), "; convert one of them");
  TORCH_CHECK_VALUE(a.device() == b.device(), "audiosiam: argument '", b_name, "': is on ", b.device(), " but '",
                    a_name, "' is on ", a.device(), "; move both to one device");
}

// A search over NaN or infinite rows has no meaningful answer (NaN compares false with everything), so
// knn refuses them and names the first bad row rather than returning arbitrary neighbours.
inline void check_finite_rows(const at::Tensor& t, const char* name) {
  const auto bad = (~at::isfinite(t)).any(1);
  if (!bad.any().item<bool>()) return;
  TORCH_CHECK_VALUE(false, "audiosiam: argument '", name, "': row ", bad.nonzero()[0].item<int64_t>(),
                    " contains NaN or infinite values; remove or fix such rows before searching");
}

}  // namespace audiosiam
