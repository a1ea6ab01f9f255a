// CPU kernels of pairwise_distance and its backward.

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../distance.h"
#include "difference_tile.h"
#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
namespace {

// Rows of y per tile: 64 rows of D=128 floats is 32 KB, which stays in L1/L2 while every x row of the
// block is compared with them.
constexpr int64_t kTileRows = 64;
// Rows per block of the self-distance (x against itself): small enough that the triangle splits evenly.
constexpr int64_t kSelfBlockRows = 16;

template <typename scalar_t, bool kAbs, bool kSqrt>
void difference_kernel_impl(const scalar_t* x, const scalar_t* y, scalar_t* out, int64_t n, int64_t m, int64_t d) {
  at::parallel_for(0, n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t jb = 0; jb < m; jb += kTileRows)
      difference_tile<scalar_t, kAbs, kSqrt>(x, begin, end, y, jb, std::min(m, jb + kTileRows), d,
                                             out + begin * m + jb, m);
  });
}

// x against itself: only the tiles on and above the diagonal are computed, each mirrored below it while
// it is still in cache (the sums are the same in either order, so the matrix is exactly symmetric).
// Block b is paired with block nb - 1 - b so every thread gets the same share of the triangle.
template <typename scalar_t, bool kAbs, bool kSqrt>
void self_difference_kernel_impl(const scalar_t* x, scalar_t* out, int64_t n, int64_t d) {
  const int64_t nb = (n + kSelfBlockRows - 1) / kSelfBlockRows;
  auto block = [&](int64_t b) {
    const int64_t i0 = b * kSelfBlockRows, i1 = std::min(n, i0 + kSelfBlockRows);
    for (int64_t jb = i0; jb < n; jb += kTileRows) {
      const int64_t je = std::min(n, jb + kTileRows);
      difference_tile<scalar_t, kAbs, kSqrt>(x, i0, i1, x, jb, je, d, out + i0 * n + jb, n);
      for (int64_t j = std::max(jb, i1); j < je; ++j)
        for (int64_t i = i0; i < i1; ++i) out[j * n + i] = out[i * n + j];
    }
  };
  at::parallel_for(0, (nb + 1) / 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      block(p);
      if (nb - 1 - p != p) block(nb - 1 - p);
    }
  });
}

template <bool kSelf, typename scalar_t>
void dispatch_metric(Metric metric, const scalar_t* x, const scalar_t* y, scalar_t* out, int64_t n, int64_t m,
                     int64_t d) {
  auto run = [&](auto abs, auto sqrt) {
    constexpr bool kAbs = decltype(abs)::value, kSqrt = decltype(sqrt)::value;
    if constexpr (kSelf)
      self_difference_kernel_impl<scalar_t, kAbs, kSqrt>(x, out, n, d);
    else
      difference_kernel_impl<scalar_t, kAbs, kSqrt>(x, y, out, n, m, d);
  };
  if (metric == Metric::L1)
    run(std::true_type{}, std::false_type{});
  else if (metric == Metric::Euclidean)
    run(std::false_type{}, std::true_type{});
  else
    run(std::false_type{}, std::false_type{});
}

}  // namespace

at::Tensor pairwise_distance(const at::Tensor& x_in, const at::Tensor& y_in, c10::string_view metric_name) {
  check_pair(x_in, "x", y_in, "y");
  const Metric metric = parse_metric(std::string(metric_name));
  if (metric == Metric::Cosine) return cosine_distance(x_in, y_in);
  auto x = x_in.contiguous(), y = y_in.contiguous();
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  auto out = at::empty({n, m}, x.options());
  if (n == 0 || m == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_distance_cpu", [&] {
    dispatch_metric<false, scalar_t>(metric, x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                     n, m, d);
  });
  return out;
}

at::Tensor self_distance(const at::Tensor& x_in, c10::string_view metric_name) {
  check_matrix(x_in, "x");
  const Metric metric = parse_metric(std::string(metric_name));
  if (metric == Metric::Cosine) return cosine_self_distance(x_in);
  auto x = x_in.contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  auto out = at::empty({n, n}, x.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "self_distance_cpu", [&] {
    dispatch_metric<true, scalar_t>(metric, x.data_ptr<scalar_t>(), nullptr, out.data_ptr<scalar_t>(), n, n, d);
  });
  return out;
}

namespace {

// grad_x[i] = sum_j g[i, j] sign(x[i] - y[j]);  grad_y[j] = -sum_i g[i, j] sign(x[i] - y[j]).
// One pass over the pairs computes each sign once and feeds both sums: rows of x are split between
// threads (each owns its grad_x rows), and each thread accumulates grad_y into its own buffer, summed at
// the end. sign(0) = 0 is the subgradient (see distance.h).
template <typename scalar_t>
void l1_grad_rows(const scalar_t* g, const scalar_t* x, const scalar_t* y, scalar_t* gx, scalar_t* gy, int64_t begin,
                  int64_t end, int64_t m, int64_t d) {
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* xi = x + i * d;
    scalar_t* gxi = gx + i * d;
    for (int64_t j = 0; j < m; ++j) {
      const scalar_t w = g[i * m + j];
      if (w == 0) continue;
      const scalar_t* yj = y + j * d;
      scalar_t* gyj = gy + j * d;
      for (int64_t k = 0; k < d; ++k) {
        const scalar_t t = xi[k] - yj[k];
        const scalar_t v = t == 0 ? scalar_t(0) : std::copysign(scalar_t(1), t) * w;  // w * sign(t), branch-free
        gxi[k] += v;
        gyj[k] -= v;
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> l1_grad_cpu(const at::Tensor& g, const at::Tensor& x, const at::Tensor& y) {
  auto gx = at::zeros_like(x);
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  std::vector<at::Tensor> gy_parts(at::get_num_threads());  // one grad_y buffer per thread that works
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "l1_grad_cpu", [&] {
    at::parallel_for(0, n, 8, [&](int64_t begin, int64_t end) {
      at::Tensor& part = gy_parts[at::get_thread_num()];
      if (!part.defined()) part = at::zeros_like(y);
      l1_grad_rows<scalar_t>(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                             gx.data_ptr<scalar_t>(), part.data_ptr<scalar_t>(), begin, end, m, d);
    });
  });
  at::Tensor gy;
  for (auto& part : gy_parts)
    if (part.defined()) gy = gy.defined() ? gy.add_(part) : part;
  return {gx, gy.defined() ? gy : at::zeros_like(y)};
}

// W = G / D (0 where D = 0), or 2 G squared, in one pass over 32 x 32 tiles instead of ATen's three. With
// `kSymmetric` G + G^T replaces G: the (j, i) tile of G is first copied transposed into a buffer in L1, so
// the arithmetic reads both operands row by row and vectorises (G + G^T as two ATen ops walks one of
// them by columns through memory).
template <typename scalar_t, bool kSquared, bool kSymmetric>
void distance_weights_impl(const scalar_t* g, const scalar_t* dist, scalar_t* w, int64_t n, int64_t m) {
  constexpr int64_t kTile = 32;
  at::parallel_for(0, (n + kTile - 1) / kTile, 1, [&](int64_t begin, int64_t end) {
    scalar_t gt[kTile][kTile];
    for (int64_t ib = begin * kTile; ib < std::min(n, end * kTile); ib += kTile) {
      const int64_t ie = std::min(n, ib + kTile);
      for (int64_t jb = 0; jb < m; jb += kTile) {
        const int64_t je = std::min(m, jb + kTile);
        if constexpr (kSymmetric)
          for (int64_t j = jb; j < je; ++j)
            for (int64_t i = ib; i < ie; ++i) gt[i - ib][j - jb] = g[j * n + i];
        for (int64_t i = ib; i < ie; ++i) {
          const scalar_t *gi = g + i * m, *di = dist + i * m, *ti = gt[i - ib];
          scalar_t* wi = w + i * m;
          for (int64_t j = jb; j < je; ++j) {
            const scalar_t both = kSymmetric ? gi[j] + ti[j - jb] : gi[j];
            wi[j] = kSquared ? 2 * both : (di[j] > 0 ? both / di[j] : scalar_t(0));
          }
        }
      }
    }
  });
}

at::Tensor distance_weights_cpu(const at::Tensor& grad, const at::Tensor& dist, bool squared, bool symmetric) {
  auto w = at::empty_like(grad);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "distance_weights_cpu", [&] {
    auto run = squared ? (symmetric ? &distance_weights_impl<scalar_t, true, true> : &distance_weights_impl<scalar_t, true, false>)
                       : (symmetric ? &distance_weights_impl<scalar_t, false, true> : &distance_weights_impl<scalar_t, false, false>);
    run(grad.data_ptr<scalar_t>(), dist.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), grad.size(0), grad.size(1));
  });
  return w;
}

const BackwardKernels kBackwardKernels{&l1_grad_cpu, &distance_weights_cpu};

}  // namespace

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward(const at::Tensor& grad, const at::Tensor& x,
                                                              const at::Tensor& y, const at::Tensor& dist,
                                                              c10::string_view metric) {
  return pairwise_distance_backward_impl(grad, x, y, dist, std::string(metric), kBackwardKernels);
}

at::Tensor self_distance_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                  c10::string_view metric) {
  return self_distance_backward_impl(grad, x, dist, std::string(metric), kBackwardKernels);
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
