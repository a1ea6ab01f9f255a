// CPU kernels of pairwise_distance and its backward.

#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <type_traits>

#include <cmath>
#include <vector>

#include "../distance.h"
#include "difference_sum.h"

namespace audiosiam {
namespace {

// Rows of y per tile: 64 rows of D=128 floats is 32 KB, which stays in L1/L2 while every x row of the
// block is compared with them.
constexpr int64_t kTileRows = 64;

#if defined(__AVX512F__)
// fp32 squared differences of rows x[i..i+3] against y[j..j+3], 16 lanes at a time: each loaded vector
// serves four pairs, so the loop is bound by arithmetic, not loads. Sixteen accumulators + eight loads fit
// in the 32 AVX-512 registers. Requires d % 16 == 0 (the caller checks).
inline void squared_4x4_avx512(const float* x, const float* y, int64_t d, float out[4][4]) {
  __m512 acc[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; k += 16) {
    __m512 xv[4], yv[4];
    for (int r = 0; r < 4; ++r) xv[r] = _mm512_loadu_ps(x + r * d + k);
    for (int c = 0; c < 4; ++c) yv[c] = _mm512_loadu_ps(y + c * d + k);
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        const __m512 t = _mm512_sub_ps(xv[r], yv[c]);
        acc[r][c] = _mm512_fmadd_ps(t, t, acc[r][c]);
      }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
}
#endif

template <typename scalar_t, bool kAbs, bool kSqrt>
void difference_kernel_impl(const scalar_t* x, const scalar_t* y, scalar_t* out, int64_t n, int64_t m, int64_t d) {
  auto finish = [](scalar_t s) { return kSqrt ? std::sqrt(s) : s; };
  at::parallel_for(0, n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t jb = 0; jb < m; jb += kTileRows) {
      const int64_t je = std::min(m, jb + kTileRows);
      int64_t i = begin;
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<scalar_t, float> && !kAbs) {
        if (d % 16 == 0) {
          for (; i + 4 <= end; i += 4) {  // 4 x 4 blocks; leftover columns below, leftover rows after
            int64_t j = jb;
            for (; j + 4 <= je; j += 4) {
              // x rows i..i+3 and y rows j..j+3 are contiguous, d apart
              float block[4][4];
              squared_4x4_avx512(x + i * d, y + j * d, d, block);
              for (int r = 0; r < 4; ++r)
                for (int c = 0; c < 4; ++c) out[(i + r) * m + j + c] = finish(block[r][c]);
            }
            for (; j < je; ++j)
              for (int r = 0; r < 4; ++r)
                out[(i + r) * m + j] = finish(cpu::difference_sum<scalar_t, kAbs>(x + (i + r) * d, y + j * d, d));
          }
        }
      }
#endif
      for (; i < end; ++i)
        for (int64_t j = jb; j < je; ++j)
          out[i * m + j] = finish(cpu::difference_sum<scalar_t, kAbs>(x + i * d, y + j * d, d));
    }
  });
}

at::Tensor pairwise_distance_cpu(const at::Tensor& x_in, const at::Tensor& y_in, c10::string_view metric_name) {
  check_pair(x_in, "x", y_in, "y");
  const Metric metric = parse_metric(std::string(metric_name));
  if (metric == Metric::Cosine) return cosine_distance(x_in, y_in);
  auto x = x_in.contiguous(), y = y_in.contiguous();
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  auto out = at::empty({n, m}, x.options());
  if (n == 0 || m == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_distance_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    if (metric == Metric::L1) {
      difference_kernel_impl<scalar_t, true, false>(xp, yp, op, n, m, d);
    } else if (metric == Metric::Euclidean) {
      difference_kernel_impl<scalar_t, false, true>(xp, yp, op, n, m, d);
    } else {
      difference_kernel_impl<scalar_t, false, false>(xp, yp, op, n, m, d);
    }
  });
  return out;
}

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

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                  const at::Tensor& y, const at::Tensor& dist,
                                                                  c10::string_view metric) {
  return pairwise_distance_backward_impl(grad, x, y, dist, std::string(metric), &l1_grad_cpu);
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) {
  m.impl("pairwise_distance", &audiosiam::pairwise_distance_cpu);
  m.impl("_pairwise_distance_backward", &audiosiam::pairwise_distance_backward_cpu);
}
