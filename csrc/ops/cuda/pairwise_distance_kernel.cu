// CUDA kernels of pairwise_distance and its backward (same definitions as the CPU kernels).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../distance.h"
#include "difference_kernel.cuh"

namespace audiosiam {
namespace {

at::Tensor pairwise_distance_cuda(const at::Tensor& x_in, const at::Tensor& y_in, c10::string_view metric_name) {
  check_pair(x_in, "x", y_in, "y");
  const Metric metric = parse_metric(std::string(metric_name));
  const c10::cuda::CUDAGuard guard(x_in.device());
  if (metric == Metric::Cosine) return cosine_distance(x_in, y_in);
  auto x = x_in.contiguous(), y = y_in.contiguous();
  auto out = at::empty({x.size(0), y.size(0)}, x.options());
  if (out.numel() == 0) return out;
  cuda::launch_difference(x, y, out, metric);
  return out;
}

// The CUDA kernel computes the whole square: on a GPU the mirrored half would cost a second pass.
at::Tensor self_distance_cuda(const at::Tensor& x, c10::string_view metric_name) {
  check_matrix(x, "x");
  if (parse_metric(std::string(metric_name)) == Metric::Cosine) return cosine_self_distance(x);
  return pairwise_distance_cuda(x, x, metric_name);
}

template <typename scalar_t>
__global__ void l1_grad_x_kernel(const scalar_t* g, const scalar_t* x, const scalar_t* y, scalar_t* gx, int64_t n,
                                 int64_t m, int64_t d) {
  // One thread per (i, k): grad_x[i, k] = sum_j g[i, j] sign(x[i, k] - y[j, k]); threads of a warp read
  // consecutive k, so the loads of y are coalesced.
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * d) return;
  const int64_t i = idx / d, k = idx % d;
  const scalar_t xv = x[idx];
  scalar_t acc = 0;
  for (int64_t j = 0; j < m; ++j) {
    const scalar_t t = xv - y[j * d + k];
    acc += g[i * m + j] * static_cast<scalar_t>((t > 0) - (t < 0));
  }
  gx[idx] = acc;
}

template <typename scalar_t>
__global__ void l1_grad_y_kernel(const scalar_t* g, const scalar_t* x, const scalar_t* y, scalar_t* gy, int64_t n,
                                 int64_t m, int64_t d) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= m * d) return;
  const int64_t j = idx / d, k = idx % d;
  const scalar_t yv = y[idx];
  scalar_t acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t t = x[i * d + k] - yv;
    acc -= g[i * m + j] * static_cast<scalar_t>((t > 0) - (t < 0));
  }
  gy[idx] = acc;
}

std::tuple<at::Tensor, at::Tensor> l1_grad_cuda(const at::Tensor& g, const at::Tensor& x, const at::Tensor& y) {
  auto gx = at::zeros_like(x), gy = at::zeros_like(y);
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  constexpr int kThreads = 256;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "l1_grad_cuda", [&] {
    if (n * d > 0)
      l1_grad_x_kernel<scalar_t><<<(n * d + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
          g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), n, m, d);
    if (m * d > 0)
      l1_grad_y_kernel<scalar_t><<<(m * d + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
          g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), n, m, d);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gx, gy};
}

const BackwardKernels kBackwardKernels{&l1_grad_cuda, &distance_weights_aten};

std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& y, const at::Tensor& dist,
                                                                   c10::string_view metric) {
  const c10::cuda::CUDAGuard guard(x.device());
  return pairwise_distance_backward_impl(grad, x, y, dist, std::string(metric), kBackwardKernels);
}

at::Tensor self_distance_backward_cuda(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                       c10::string_view metric) {
  const c10::cuda::CUDAGuard guard(x.device());
  return self_distance_backward_impl(grad, x, dist, std::string(metric), kBackwardKernels);
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CUDA, m) {
  m.impl("pairwise_distance", &audiosiam::pairwise_distance_cuda);
  m.impl("_pairwise_distance_backward", &audiosiam::pairwise_distance_backward_cuda);
  m.impl("self_distance", &audiosiam::self_distance_cuda);
  m.impl("_self_distance_backward", &audiosiam::self_distance_backward_cuda);
}
