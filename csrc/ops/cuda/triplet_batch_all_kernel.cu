// CUDA kernel of triplet_batch_all: one thread block per anchor. Its threads split the batch's columns;
// each thread owns the negatives in its columns (so their slopes need no atomics) and, for every positive
// in turn, the block sums that positive's slope with a deterministic cub reduction.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cub/block/block_reduce.cuh>

#include "../triplet.h"

namespace audiosiam {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void batch_all_kernel(const scalar_t* __restrict__ dist, const int64_t* __restrict__ labels, int64_t b,
                                 double margin, bool soft, scalar_t* term_sum, int64_t* valid, int64_t* active,
                                 scalar_t* slope) {
  using Reduce = cub::BlockReduce<scalar_t, kThreads>;
  using Count = cub::BlockReduce<long long, kThreads>;
  __shared__ typename Reduce::TempStorage reduce_storage;
  __shared__ typename Count::TempStorage count_storage;
  const int64_t a = blockIdx.x;
  const int64_t la = labels[a];
  const scalar_t* row = dist + a * b;
  scalar_t* out = slope + a * b;
  scalar_t sum = 0;
  long long n_valid = 0, n_active = 0;
  for (int64_t p = 0; p < b; ++p) {  // the same p for every thread: the branch below is uniform
    if (p == a || labels[p] != la) continue;
    const scalar_t d_ap = row[p];
    scalar_t w = 0;
    for (int64_t n = threadIdx.x; n < b; n += kThreads) {
      if (labels[n] == la) continue;
      const scalar_t term = term_value<scalar_t>(d_ap, row[n], margin, 1.0, soft);
      const scalar_t g = term_slope<scalar_t>(d_ap, row[n], margin, 1.0, soft);
      sum += term;
      n_valid += 1;
      n_active += term > 0;
      w += g;
      out[n] -= g;  // column n belongs to this thread alone
    }
    const scalar_t total = Reduce(reduce_storage).Sum(w);
    if (threadIdx.x == 0) out[p] = total;
    __syncthreads();  // reduce_storage is reused by the next positive
  }
  const scalar_t block_sum = Reduce(reduce_storage).Sum(sum);
  __syncthreads();
  const long long block_valid = Count(count_storage).Sum(n_valid);
  __syncthreads();
  const long long block_active = Count(count_storage).Sum(n_active);
  if (threadIdx.x == 0) term_sum[a] = block_sum, valid[a] = block_valid, active[a] = block_active;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_all_cuda(const at::Tensor& dist_in,
                                                                                  const at::Tensor& labels_in,
                                                                                  double margin, bool soft) {
  check_distance_batch(dist_in, labels_in);
  const c10::cuda::CUDAGuard guard(dist_in.device());
  auto dist = dist_in.contiguous(), labels = labels_in.contiguous();
  const int64_t b = dist.size(0);
  BatchAllOutputs out(dist, labels);
  if (b == 0) return out.tuple();
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "triplet_batch_all_cuda", [&] {
    batch_all_kernel<scalar_t><<<b, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        dist.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, margin, soft, out.term_sum.data_ptr<scalar_t>(),
        out.valid.data_ptr<int64_t>(), out.active.data_ptr<int64_t>(), out.slope.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out.tuple();
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CUDA, m) { m.impl("triplet_batch_all", &audiosiam::triplet_batch_all_cuda); }
