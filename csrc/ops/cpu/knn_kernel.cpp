// CPU kernel of knn.
//
// Euclidean and squared euclidean: screen with BLAS, decide with exact distances. A block of queries
// against a block of references gets approximate squared distances |q|^2 + |r|^2 - 2<q, r> from one
// matrix product (fast, but off by rounding of order u * D * (|q|^2 + |r|^2)). A reference can only be
// among a query's k nearest if its approximate distance is within twice that error bound of the k-th
// smallest approximate distance seen so far; only those candidates get their exact distance (differences,
// as in pairwise_distance), and the answer is the k smallest exact distances, ties to the lower index.
// Why that is exact: with b the error bound and A_k the final k-th smallest approximate distance, k
// references have exact distance <= A_k + b, so every true neighbour j has approx_j <= exact_j + b <=
// A_k + 2b; the running k-th smallest only decreases towards A_k, so no true neighbour is ever screened
// out. On typical data a query computes ~k log(M / k) exact distances instead of M; degenerate data
// (all rows equal) makes everything a candidate, which is slower but still exact.
//
// L1 (no matrix-product form) and cosine (already a matrix product of unit rows) compute every distance
// of a query block, then select. Either way only (query block x reference block) tiles ever exist.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <queue>
#include <vector>

#include "../distance.h"
#include "difference_sum.h"

namespace audiosiam {
namespace {

// Tiles of 1024 queries x 4096 references (16 MB in fp32): large enough for BLAS to run near its peak.
constexpr int64_t kQueryBlock = 1024;
constexpr int64_t kReferenceBlock = 4096;
constexpr int64_t kScanChunk = 16;  // the screen tests 16 values at once (one AVX-512 compare)

// The k smallest (distance, index) pairs seen so far, largest on top; lexicographic order makes the lower
// index win a tie, because an equal distance with a higher index is never "smaller" than the top.
template <typename scalar_t>
class TopK {
 public:
  explicit TopK(int64_t k) : k_(k) { heap_.reserve(k); }

  scalar_t worst() const {
    return static_cast<int64_t>(heap_.size()) < k_ ? std::numeric_limits<scalar_t>::infinity() : heap_.front().first;
  }

  void offer(scalar_t d, int64_t i) {
    const std::pair<scalar_t, int64_t> item{d, i};
    if (static_cast<int64_t>(heap_.size()) < k_) {
      heap_.push_back(item);
      std::push_heap(heap_.begin(), heap_.end());
    } else if (item < heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = item;
      std::push_heap(heap_.begin(), heap_.end());
    }
  }

  // Writes the k pairs in ascending order; `transform` maps each kept distance (e.g. sqrt).
  template <typename F>
  void write(scalar_t* out_d, int64_t* out_i, F transform) {
    std::sort_heap(heap_.begin(), heap_.end());
    for (int64_t t = 0; t < k_; ++t) {
      out_d[t] = transform(heap_[t].first);
      out_i[t] = heap_[t].second;
    }
  }

 private:
  int64_t k_;
  std::vector<std::pair<scalar_t, int64_t>> heap_;
};

// Bound on |fl(|q|^2 + |r|^2 - 2<q, r>) - (|q|^2 + |r|^2 - 2<q, r>)| for length-d fp sums: each of the
// three sums errs by at most gamma_d times its absolute terms (|<q, r>| <= (|q|^2 + |r|^2) / 2), plus the
// two final roundings; doubled for safety (BLAS may block or fuse differently).
template <typename scalar_t>
scalar_t gram_error_factor(int64_t d) {
  const double u = std::numeric_limits<scalar_t>::epsilon() / 2;
  const double gamma = d * u / (1 - d * u);
  return static_cast<scalar_t>(2 * (2 * gamma + 4 * u));
}

template <typename scalar_t>
void knn_euclidean(const at::Tensor& query, const at::Tensor& ref, int64_t k, bool take_sqrt, at::Tensor& out_d,
                   at::Tensor& out_i) {
  const int64_t nq = query.size(0), nr = ref.size(0), d = query.size(1);
  const scalar_t* qp = query.data_ptr<scalar_t>();
  const scalar_t* rp = ref.data_ptr<scalar_t>();
  const auto q_norm = query.pow(2).sum(1).contiguous();
  const auto r_norm = ref.pow(2).sum(1).contiguous();
  const scalar_t* qn = q_norm.data_ptr<scalar_t>();
  const scalar_t factor = gram_error_factor<scalar_t>(d);
  for (int64_t qb = 0; qb < nq; qb += kQueryBlock) {
    const int64_t qe = std::min(nq, qb + kQueryBlock);
    std::vector<TopK<scalar_t>> approx(qe - qb, TopK<scalar_t>(k)), exact(qe - qb, TopK<scalar_t>(k));
    for (int64_t rb = 0; rb < nr; rb += kReferenceBlock) {
      const int64_t re = std::min(nr, rb + kReferenceBlock);
      // |r|^2 - 2<q, r> in one BLAS call (|q|^2 is added per query below).
      const auto partial = at::addmm(r_norm.slice(0, rb, re).unsqueeze(0), query.slice(0, qb, qe),
                                     ref.slice(0, rb, re).t(), /*beta=*/1, /*alpha=*/-2).contiguous();
      const scalar_t r_norm_max = r_norm.slice(0, rb, re).max().item<scalar_t>();
      at::parallel_for(qb, qe, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t* row = partial.data_ptr<scalar_t>() + (i - qb) * (re - rb);
          const scalar_t bound = factor * (qn[i] + r_norm_max);
          TopK<scalar_t>& a = approx[i - qb];
          TopK<scalar_t>& e = exact[i - qb];
          // Screen: skip j if it cannot beat the k-th best approximate (s > A + 2b) or exact (s - b > E)
          // distance so far. The threshold changes only when a candidate is taken, so the common path
          // is one load, one add and one compare.
          auto threshold = [&] { return std::min(a.worst() + 2 * bound, e.worst() + bound) - qn[i]; };
          scalar_t limit = threshold();
          for (int64_t c = rb; c < re; c += kScanChunk) {
            const int64_t c_end = std::min(re, c + kScanChunk);
            bool any = false;  // vectorised: does any value of the chunk pass the screen (NaN passes)?
            for (int64_t j = c; j < c_end; ++j) any |= !(row[j - rb] > limit);
            if (!any) continue;
            for (int64_t j = c; j < c_end; ++j) {
              const scalar_t partial_j = row[j - rb];
              // NaN (inf - inf where squares overflow) screens nothing out: the exact distance decides.
              if (partial_j > limit) continue;
              if (!std::isnan(partial_j)) a.offer(qn[i] + partial_j, j);
              e.offer(cpu::difference_sum<scalar_t, false>(qp + i * d, rp + j * d, d), j);
              limit = threshold();
            }
          }
        }
      });
    }
    at::parallel_for(qb, qe, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        exact[i - qb].write(out_d.data_ptr<scalar_t>() + i * k, out_i.data_ptr<int64_t>() + i * k,
                            [&](scalar_t v) { return take_sqrt ? std::sqrt(v) : v; });
    });
  }
}

template <typename scalar_t>
void knn_full(const at::Tensor& query, const at::Tensor& ref, int64_t k, Metric metric, at::Tensor& out_d,
              at::Tensor& out_i) {
  const int64_t nq = query.size(0), nr = ref.size(0), d = query.size(1);
  const scalar_t* qp = query.data_ptr<scalar_t>();
  const scalar_t* rp = ref.data_ptr<scalar_t>();
  // Cosine distances of a whole query block come from one matrix product; keep that block near 64 MB.
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(kQueryBlock, (int64_t(1) << 24) / std::max<int64_t>(1, nr)));
  for (int64_t qb = 0; qb < nq; qb += block) {
    const int64_t qe = std::min(nq, qb + block);
    at::Tensor cosine;
    if (metric == Metric::Cosine) cosine = cosine_distance(query.slice(0, qb, qe), ref).contiguous();
    at::parallel_for(qb, qe, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        TopK<scalar_t> best(k);
        const scalar_t* cos_row = metric == Metric::Cosine ? cosine.data_ptr<scalar_t>() + (i - qb) * nr : nullptr;
        for (int64_t j = 0; j < nr; ++j) {
          const scalar_t v = cos_row ? cos_row[j] : cpu::difference_sum<scalar_t, true>(qp + i * d, rp + j * d, d);
          if (v <= best.worst()) best.offer(v, j);
        }
        best.write(out_d.data_ptr<scalar_t>() + i * k, out_i.data_ptr<int64_t>() + i * k, [](scalar_t v) { return v; });
      }
    });
  }
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& query_in, const at::Tensor& ref_in, int64_t k,
                                           c10::string_view metric_name) {
  check_knn_args(query_in, ref_in, k);
  const Metric metric = parse_metric(std::string(metric_name));
  auto query = query_in.contiguous(), ref = ref_in.contiguous();
  auto out_d = at::empty({query.size(0), k}, query.options());
  auto out_i = at::empty({query.size(0), k}, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_cpu", [&] {
    if (metric == Metric::Euclidean || metric == Metric::SqEuclidean) {
      knn_euclidean<scalar_t>(query, ref, k, metric == Metric::Euclidean, out_d, out_i);
    } else {
      knn_full<scalar_t>(query, ref, k, metric, out_d, out_i);
    }
  });
  return {out_d, out_i};
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) { m.impl("knn", &audiosiam::knn_cpu); }
