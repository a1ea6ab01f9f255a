// CUDA kernels of the fused batch-hard triplet loss: one thread block per anchor; its threads share the
// batch, each keeping its farthest positive and nearest negative, then the block reduces them (ties to
// the lower index, as on the CPU). The backward scatters O(B D) updates with atomicAdd.

#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "../triplet.h"

namespace audiosiam {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void batch_hard_forward_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ labels, int64_t b,
                                          int64_t d, double margin, double scale, bool squared, bool soft,
                                          scalar_t* terms, int64_t* pos, int64_t* neg, scalar_t* d_ap, scalar_t* d_an) {
  const int64_t i = blockIdx.x;
  __shared__ scalar_t best_p[kThreads], best_n[kThreads];
  __shared__ int64_t idx_p[kThreads], idx_n[kThreads];
  scalar_t bp = -std::numeric_limits<scalar_t>::infinity(), bn = std::numeric_limits<scalar_t>::infinity();
  int64_t ip = -1, in = -1;
  const int64_t li = labels[i];
  for (int64_t j = threadIdx.x; j < b; j += blockDim.x) {  // increasing j per thread: strict compare keeps lowest
    if (j == i) continue;
    scalar_t s = 0;
    for (int64_t k = 0; k < d; ++k) {
      const scalar_t t = x[i * d + k] - x[j * d + k];
      s += t * t;
    }
    const scalar_t dist = squared ? s : sqrt(s);
    if (labels[j] == li) {
      if (dist > bp) bp = dist, ip = j;
    } else if (dist < bn) {
      bn = dist, in = j;
    }
  }
  best_p[threadIdx.x] = bp, best_n[threadIdx.x] = bn, idx_p[threadIdx.x] = ip, idx_n[threadIdx.x] = in;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const int o = threadIdx.x + stride;
      const bool take_p = idx_p[o] >= 0 && (idx_p[threadIdx.x] < 0 || best_p[o] > best_p[threadIdx.x] ||
                                            (best_p[o] == best_p[threadIdx.x] && idx_p[o] < idx_p[threadIdx.x]));
      if (take_p) best_p[threadIdx.x] = best_p[o], idx_p[threadIdx.x] = idx_p[o];
      const bool take_n = idx_n[o] >= 0 && (idx_n[threadIdx.x] < 0 || best_n[o] < best_n[threadIdx.x] ||
                                            (best_n[o] == best_n[threadIdx.x] && idx_n[o] < idx_n[threadIdx.x]));
      if (take_n) best_n[threadIdx.x] = best_n[o], idx_n[threadIdx.x] = idx_n[o];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const bool valid = idx_p[0] >= 0 && idx_n[0] >= 0;
    pos[i] = valid ? idx_p[0] : -1;
    neg[i] = valid ? idx_n[0] : -1;
    d_ap[i] = valid ? best_p[0] : scalar_t(0);
    d_an[i] = valid ? best_n[0] : scalar_t(0);
    terms[i] = valid ? term_value<scalar_t>(best_p[0], best_n[0], margin, scale, soft) : scalar_t(0);
  }
}

template <typename scalar_t>
__global__ void batch_hard_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                           const int64_t* pos, const int64_t* neg, const scalar_t* d_ap,
                                           const scalar_t* d_an, int64_t d, double margin, double scale, bool squared,
                                           bool soft, scalar_t* grad) {
  const int64_t i = blockIdx.x;
  const int64_t p = pos[i], n = neg[i];
  if (p < 0 || g[i] == 0) return;
  const scalar_t slope = g[i] * term_slope<scalar_t>(d_ap[i], d_an[i], margin, scale, soft);
  if (slope == 0) return;
  const scalar_t cp = squared ? 2 * slope : (d_ap[i] > 0 ? slope / d_ap[i] : scalar_t(0));
  const scalar_t cn = squared ? 2 * slope : (d_an[i] > 0 ? slope / d_an[i] : scalar_t(0));
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
    const scalar_t up = cp * (x[i * d + k] - x[p * d + k]), un = cn * (x[i * d + k] - x[n * d + k]);
    gpuAtomicAdd(grad + i * d + k, up - un);
    gpuAtomicAdd(grad + p * d + k, -up);
    gpuAtomicAdd(grad + n * d + k, un);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_hard_cuda(
    const at::Tensor& embeddings_in, const at::Tensor& labels_in, double margin, double scale, bool squared, bool soft) {
  check_batch(embeddings_in, labels_in);
  const c10::cuda::CUDAGuard guard(embeddings_in.device());
  auto x = embeddings_in.contiguous();
  auto labels = labels_in.contiguous();
  const int64_t b = x.size(0), d = x.size(1);
  auto terms = at::zeros({b}, x.options());
  auto d_ap = at::zeros({b}, x.options()), d_an = at::zeros({b}, x.options());
  auto pos = at::full({b}, -1, labels.options()), neg = at::full({b}, -1, labels.options());
  if (b == 0) return {terms, pos, neg, d_ap, d_an};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "triplet_batch_hard_cuda", [&] {
    batch_hard_forward_kernel<scalar_t><<<b, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, d, margin, scale, squared, soft,
        terms.data_ptr<scalar_t>(), pos.data_ptr<int64_t>(), neg.data_ptr<int64_t>(), d_ap.data_ptr<scalar_t>(),
        d_an.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {terms, pos, neg, d_ap, d_an};
}

at::Tensor triplet_batch_hard_backward_cuda(const at::Tensor& grad_terms, const at::Tensor& embeddings,
                                            const at::Tensor& positive, const at::Tensor& negative,
                                            const at::Tensor& d_ap, const at::Tensor& d_an, double margin,
                                            double scale, bool squared, bool soft) {
  const c10::cuda::CUDAGuard guard(embeddings.device());
  auto x = embeddings.contiguous();
  auto g = grad_terms.contiguous();
  auto grad = at::zeros_like(x);
  const int64_t b = x.size(0), d = x.size(1);
  if (b == 0) return grad;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "triplet_batch_hard_backward_cuda", [&] {
    batch_hard_backward_kernel<scalar_t><<<b, 128, 0, at::cuda::getCurrentCUDAStream()>>>(
        g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), positive.data_ptr<int64_t>(), negative.data_ptr<int64_t>(),
        d_ap.data_ptr<scalar_t>(), d_an.data_ptr<scalar_t>(), d, margin, scale, squared, soft,
        grad.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CUDA, m) {
  m.impl("triplet_batch_hard", &audiosiam::triplet_batch_hard_cuda);
  m.impl("_triplet_batch_hard_backward", &audiosiam::triplet_batch_hard_backward_cuda);
}
