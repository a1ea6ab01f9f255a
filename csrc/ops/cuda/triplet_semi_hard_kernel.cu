// CUDA kernel of triplet_semi_hard_negatives: one thread per (anchor, positive) cell of the batch; cells
// that are not positive pairs return at once, the others scan the batch's negatives.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../triplet.h"

namespace audiosiam {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void semi_hard_kernel(const scalar_t* __restrict__ dist, const int64_t* __restrict__ labels, int64_t b,
                                 double margin, int64_t* out) {
  const int64_t cell = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cell >= b * b) return;
  const int64_t a = cell / b, p = cell % b;
  if (p == a || labels[p] != labels[a]) return;
  const scalar_t* row = dist + a * b;
  SemiHardChoice<scalar_t> pick;
  for (int64_t n = 0; n < b; ++n)
    if (labels[n] != labels[a]) pick.offer(row[p], row[n], n, margin);
  out[cell] = pick.choice();
}

at::Tensor triplet_semi_hard_negatives_cuda(const at::Tensor& dist_in, const at::Tensor& labels_in, double margin) {
  check_distance_batch(dist_in, labels_in);
  const c10::cuda::CUDAGuard guard(dist_in.device());
  auto dist = dist_in.contiguous(), labels = labels_in.contiguous();
  const int64_t b = dist.size(0);
  auto out = at::full({b, b}, -1, labels.options());
  if (b == 0) return out;
  const int64_t blocks = (b * b + kThreads - 1) / kThreads;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "triplet_semi_hard_negatives_cuda", [&] {
    semi_hard_kernel<scalar_t><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        dist.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, margin, out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CUDA, m) {
  m.impl("triplet_semi_hard_negatives", &audiosiam::triplet_semi_hard_negatives_cuda);
}
