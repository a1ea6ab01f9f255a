// CPU kernel of knn: query blocks in parallel; per query, exact distances to every reference, then a
// partial sort of (distance, index) pairs, so ties go to the lower index.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../distance.h"
#include "difference_sum.h"

namespace audiosiam {
namespace {

template <typename scalar_t>
void knn_block(const scalar_t* q, const scalar_t* r, int64_t nr, int64_t d, int64_t k, Metric metric,
               const scalar_t* cosine_row, scalar_t* out_d, int64_t* out_i, std::vector<scalar_t>& dist,
               std::vector<int64_t>& order) {
  for (int64_t j = 0; j < nr; ++j) {
    if (metric == Metric::Cosine) {
      dist[j] = cosine_row[j];
    } else if (metric == Metric::L1) {
      dist[j] = cpu::difference_sum<scalar_t, true>(q, r + j * d, d);
    } else {
      dist[j] = cpu::difference_sum<scalar_t, false>(q, r + j * d, d);  // squared; sqrt only for the k kept
    }
  }
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    return dist[a] < dist[b] || (dist[a] == dist[b] && a < b);
  });
  for (int64_t t = 0; t < k; ++t) {
    const scalar_t v = dist[order[t]];
    out_d[t] = metric == Metric::Euclidean ? std::sqrt(v) : v;
    out_i[t] = order[t];
  }
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& query_in, const at::Tensor& ref_in, int64_t k,
                                           c10::string_view metric_name) {
  check_pair(query_in, "query", ref_in, "reference");
  const Metric metric = parse_metric(std::string(metric_name));
  TORCH_CHECK_VALUE(k >= 1 && k <= ref_in.size(0), "audiosiam: argument 'k': got ", k, ", expected 1 <= k <= ",
                    ref_in.size(0), " (the number of reference rows)");
  auto query = query_in.contiguous(), ref = ref_in.contiguous();
  const int64_t nq = query.size(0), nr = ref.size(0), d = query.size(1);
  auto out_d = at::empty({nq, k}, query.options());
  auto out_i = at::empty({nq, k}, query.options().dtype(at::kLong));
  constexpr int64_t kBlock = 256;  // cosine distances are computed a block of queries at a time (BLAS)
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_cpu", [&] {
    for (int64_t qb = 0; qb < nq; qb += kBlock) {
      const int64_t qe = std::min(nq, qb + kBlock);
      at::Tensor cosine;
      if (metric == Metric::Cosine) cosine = cosine_distance(query.slice(0, qb, qe), ref).contiguous();
      at::parallel_for(qb, qe, 1, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> dist(nr);
        std::vector<int64_t> order(nr);
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t* cos_row = metric == Metric::Cosine ? cosine.data_ptr<scalar_t>() + (i - qb) * nr : nullptr;
          knn_block<scalar_t>(query.data_ptr<scalar_t>() + i * d, ref.data_ptr<scalar_t>(), nr, d, k, metric, cos_row,
                              out_d.data_ptr<scalar_t>() + i * k, out_i.data_ptr<int64_t>() + i * k, dist, order);
        }
      });
    }
  });
  return {out_d, out_i};
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) { m.impl("knn", &audiosiam::knn_cpu); }
