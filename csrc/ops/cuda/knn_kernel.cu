// CUDA kernel of knn: query blocks; exact distances of the block (tiled difference kernel, or cosine
// through cuBLAS), then a stable sort of each row so ties keep the lower reference index.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../distance.h"
#include "difference_kernel.cuh"

namespace audiosiam {
namespace {

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& query_in, const at::Tensor& ref_in, int64_t k,
                                            c10::string_view metric_name) {
  check_knn_args(query_in, ref_in, k);
  const Metric metric = parse_metric(std::string(metric_name));
  const c10::cuda::CUDAGuard guard(query_in.device());
  auto query = query_in.contiguous(), ref = ref_in.contiguous();
  const int64_t nq = query.size(0), nr = ref.size(0);
  auto out_d = at::empty({nq, k}, query.options());
  auto out_i = at::empty({nq, k}, query.options().dtype(at::kLong));
  // Bound the block's distance matrix to about 256 MB whatever the reference size.
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(4096, (int64_t(1) << 26) / std::max<int64_t>(1, nr)));
  for (int64_t qb = 0; qb < nq; qb += block) {
    const int64_t qe = std::min(nq, qb + block);
    auto q = query.slice(0, qb, qe);
    at::Tensor dist;
    if (metric == Metric::Cosine) {
      dist = cosine_distance(q, ref);
    } else {
      dist = at::empty({qe - qb, nr}, query.options());
      cuda::launch_difference(q, ref, dist, metric, /*squared_for_euclidean=*/true);
    }
    auto [sorted, order] = dist.sort(/*stable=*/true, /*dim=*/1);
    auto values = sorted.slice(1, 0, k);
    out_d.slice(0, qb, qe).copy_(metric == Metric::Euclidean ? values.sqrt() : values);
    out_i.slice(0, qb, qe).copy_(order.slice(1, 0, k));
  }
  return {out_d, out_i};
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CUDA, m) { m.impl("knn", &audiosiam::knn_cuda); }
