// The tiled CUDA kernel behind every exact difference-based distance (euclidean, sqeuclidean, l1):
// each 16 x 16 thread block computes a 16 x 16 tile of the output, staging 16-wide slices of the x and y
// rows in shared memory, so each element of x and y is read from global memory once per tile.
#pragma once

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "../../common/checks.h"

namespace audiosiam {
namespace cuda {

constexpr int kTile = 16;

template <typename scalar_t, bool kAbs>
__global__ void difference_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                  scalar_t* __restrict__ out, int64_t n, int64_t m, int64_t d, bool take_sqrt) {
  __shared__ scalar_t xs[kTile][kTile + 1];  // +1 column: no shared-memory bank conflicts
  __shared__ scalar_t ys[kTile][kTile + 1];
  const int64_t i = blockIdx.y * static_cast<int64_t>(kTile) + threadIdx.y;
  const int64_t j = blockIdx.x * static_cast<int64_t>(kTile) + threadIdx.x;
  const int64_t y_row = blockIdx.x * static_cast<int64_t>(kTile) + threadIdx.y;
  scalar_t acc = 0;
  for (int64_t k0 = 0; k0 < d; k0 += kTile) {
    const int64_t k = k0 + threadIdx.x;
    xs[threadIdx.y][threadIdx.x] = (i < n && k < d) ? x[i * d + k] : scalar_t(0);
    ys[threadIdx.y][threadIdx.x] = (y_row < m && k < d) ? y[y_row * d + k] : scalar_t(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
      const scalar_t t = xs[threadIdx.y][kk] - ys[threadIdx.x][kk];  // padding is 0 - 0: adds nothing
      acc += kAbs ? (t < 0 ? -t : t) : t * t;
    }
    __syncthreads();
  }
  if (i < n && j < m) out[i * m + j] = take_sqrt ? sqrt(acc) : acc;
}

// out (n, m) <- distances of x (n, d) and y (m, d), all contiguous on one CUDA device.
inline void launch_difference(const at::Tensor& x, const at::Tensor& y, at::Tensor& out, Metric metric,
                              bool squared_for_euclidean = false) {
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  const dim3 block(kTile, kTile);
  const dim3 grid((m + kTile - 1) / kTile, (n + kTile - 1) / kTile);
  auto stream = at::cuda::getCurrentCUDAStream();
  const bool take_sqrt = metric == Metric::Euclidean && !squared_for_euclidean;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "difference_kernel", [&] {
    if (metric == Metric::L1) {
      difference_kernel<scalar_t, true><<<grid, block, 0, stream>>>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                                                                    out.data_ptr<scalar_t>(), n, m, d, false);
    } else {
      difference_kernel<scalar_t, false><<<grid, block, 0, stream>>>(
          x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, m, d, take_sqrt);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace audiosiam
