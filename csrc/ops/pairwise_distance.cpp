// Schemas of the distance ops and the device-independent parts of their math.
//
// Forward (per device, csrc/ops/{cpu,cuda}/pairwise_distance_kernel.*): euclidean, sqeuclidean and l1 are
// summed from differences, never from |x|^2 + |y|^2 - 2<x, y>, so there is no cancellation: x against
// itself gives exactly 0, and near-duplicates keep their tiny true distance. Cosine uses a matrix product
// of unit rows (no cancellation problem there).
//
// Backward (private op _pairwise_distance_backward): with W = dL/dD scaled per metric,
//   grad_x = diag(W 1) x - W y,   grad_y = diag(W^T 1) y - W^T x,
// a pair of matrix products (see distance.h for the per-device pieces).
//
// self_distance(x, metric) is pairwise_distance(x, x, metric) as one input: kernels may compute half of
// the symmetric matrix, and the backward needs one product, grad = diag(S 1) x - S x with S = W + W^T. The subgradient where a euclidean distance is 0 is 0 (W = 0 there), never
// NaN; l1 uses sign(0) = 0; a zero row gets cosine gradient 0.

#include <torch/library.h>

#include "distance.h"

namespace audiosiam {

at::Tensor cosine_distance(const at::Tensor& x, const at::Tensor& y) {
  auto unit = [](const at::Tensor& t) {
    auto norm = t.norm(2, {1}, /*keepdim=*/true);
    return at::where(norm > 0, t / norm.clamp_min(std::numeric_limits<double>::min()), at::zeros_like(t));
  };
  return (1 - at::mm(unit(x), unit(y).t())).clamp(0, 2);
}

at::Tensor cosine_self_distance(const at::Tensor& x) {
  auto upper = at::triu(cosine_distance(x, x), 1);
  auto dist = upper + upper.t();
  // a row's distance to itself is 0 by definition (1 for an all-zero row, as cosine_distance defines it),
  // not the rounding of 1 - <u, u>
  dist.diagonal().copy_((x.norm(2, {1}) == 0).to(dist.scalar_type()));
  return dist;
}

at::Tensor distance_weights_aten(const at::Tensor& g, const at::Tensor& dist, bool squared, bool symmetric) {
  auto both = symmetric ? g + g.t() : g;
  // both / dist is inf or nan where dist == 0; where() replaces exactly those cells with the subgradient 0.
  return squared ? 2 * both : at::where(dist > 0, both / dist, at::zeros({}, both.options()));
}

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& y, const at::Tensor& dist,
                                                                   const std::string& metric_name,
                                                                   const BackwardKernels& kernels) {
  const Metric metric = parse_metric(metric_name);
  auto g = grad.contiguous();
  if (metric == Metric::L1) return kernels.l1_grad(g, x.contiguous(), y.contiguous());
  if (metric == Metric::Cosine) {
    auto nx = x.norm(2, {1}, true), ny = y.norm(2, {1}, true);
    auto ux = at::where(nx > 0, x / nx.clamp_min(std::numeric_limits<double>::min()), at::zeros_like(x));
    auto uy = at::where(ny > 0, y / ny.clamp_min(std::numeric_limits<double>::min()), at::zeros_like(y));
    // Clamping D to [0, 2] only bites at rounding level; its gradient is taken as 1 there.
    auto g_ux = -at::mm(g, uy), g_uy = -at::mm(g.t(), ux);
    auto back = [](const at::Tensor& gu, const at::Tensor& u, const at::Tensor& n) {
      auto radial = (gu * u).sum(1, true) * u;
      return at::where(n > 0, (gu - radial) / n.clamp_min(std::numeric_limits<double>::min()), at::zeros_like(gu));
    };
    return {back(g_ux, ux, nx), back(g_uy, uy, ny)};
  }
  auto w = kernels.weights(g, dist.contiguous(), metric == Metric::SqEuclidean, /*symmetric=*/false);
  // grad_x = diag(W 1) x - W y and grad_y = diag(W^T 1) y - W^T x, each as one BLAS call (addmm).
  auto grad_x = at::addmm(x * w.sum(1, true), w, y, /*beta=*/1, /*alpha=*/-1);
  auto grad_y = at::addmm(y * w.sum(0).unsqueeze(1), w.t(), x, /*beta=*/1, /*alpha=*/-1);
  return {grad_x, grad_y};
}

at::Tensor self_distance_backward_impl(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                       const std::string& metric_name, const BackwardKernels& kernels) {
  const Metric metric = parse_metric(metric_name);
  if (metric == Metric::L1) return std::get<0>(kernels.l1_grad(grad + grad.t(), x.contiguous(), x.contiguous()));
  if (metric == Metric::Cosine) {
    auto both = pairwise_distance_backward_impl(grad, x, x, dist, metric_name, kernels);
    return std::get<0>(both) + std::get<1>(both);
  }
  auto s = kernels.weights(grad.contiguous(), dist.contiguous(), metric == Metric::SqEuclidean, /*symmetric=*/true);
  return at::addmm(x * s.sum(1, true), s, x, /*beta=*/1, /*alpha=*/-1);
}

}  // namespace audiosiam

TORCH_LIBRARY_FRAGMENT(audiosiam, m) {
  m.def("pairwise_distance(Tensor x, Tensor y, str metric) -> Tensor");
  m.def("_pairwise_distance_backward(Tensor grad, Tensor x, Tensor y, Tensor dist, str metric) -> (Tensor, Tensor)");
  m.def("self_distance(Tensor x, str metric) -> Tensor");
  m.def("_self_distance_backward(Tensor grad, Tensor x, Tensor dist, str metric) -> Tensor");
}
