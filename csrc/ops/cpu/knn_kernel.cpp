// CPU kernel of knn.
//
// Euclidean and squared euclidean: screen with dot products, decide with exact distances. A query and a
// reference get the approximate squared distance |q|^2 + |r|^2 - 2<q, r> (fast, but off by rounding of
// order u * D * (|q|^2 + |r|^2)). A reference can only be among a query's k nearest if its approximate
// distance is within twice that error bound of the k-th smallest approximate distance seen so far; only
// those candidates get their exact distance (differences, as in pairwise_distance), and the answer is
// the k smallest exact distances, ties to the lower index.
// Why that is exact: with b the error bound and A_k the final k-th smallest approximate distance, k
// references have exact distance <= A_k + b, so every true neighbour j has approx_j <= exact_j + b <=
// A_k + 2b; the running k-th smallest only decreases towards A_k, so no true neighbour is ever screened
// out. On typical data a query computes ~k log(M / k) exact distances instead of M; degenerate data
// (all rows equal) makes everything a candidate, which is slower but still exact.
// The dot products come from our own AVX-512 tiles for fp32 (screened in registers, nothing written
// back), and from one BLAS call per (query block x reference block) tile otherwise.
//
// L1 (no matrix-product form) and cosine (already a matrix product of unit rows) compute every distance
// of a query block, then select. Either way only tiles of the (queries x references) matrix ever exist.

#include <ATen/Parallel.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <queue>
#include <type_traits>
#include <vector>

#include "../distance.h"
#include "difference_sum.h"
#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
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

// One query's screen: the k best approximate and exact squared distances so far, and the limit a
// reference's partial value |r|^2 - 2<q, r> must not exceed to become a candidate: it could beat the k-th
// best approximate (A + 2b) or exact (E + b) distance. The limit changes only when a candidate is taken.
template <typename scalar_t>
struct Screen {
  TopK<scalar_t> approx, exact;
  scalar_t q_norm = 0, bound = 0, limit = 0;

  explicit Screen(int64_t k) : approx(k), exact(k) {}

  void set_bound(scalar_t norm, scalar_t b) {
    q_norm = norm, bound = b;
    update_limit();
  }
  void update_limit() { limit = std::min(approx.worst() + 2 * bound, exact.worst() + bound) - q_norm; }

  // `exact_distance()` computes the true squared distance, only for a candidate. NaN partial values
  // (inf - inf where squares overflow) screen nothing out: the exact distance decides.
  template <typename F>
  void offer(scalar_t partial, int64_t j, F exact_distance) {
    if (partial > limit) return;
    if (!std::isnan(partial)) approx.offer(q_norm + partial, j);
    exact.offer(exact_distance(), j);
    update_limit();
  }
};

// Writes the k exact neighbours of queries first, first + 1, ... (one screen each), nearest first.
template <typename scalar_t>
void write_neighbours(std::vector<Screen<scalar_t>>& screens, int64_t first, int64_t k, bool take_sqrt,
                      at::Tensor& out_d, at::Tensor& out_i) {
  at::parallel_for(0, static_cast<int64_t>(screens.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s)
      screens[s].exact.write(out_d.data_ptr<scalar_t>() + (first + s) * k, out_i.data_ptr<int64_t>() + (first + s) * k,
                             [&](scalar_t v) { return take_sqrt ? std::sqrt(v) : v; });
  });
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
    std::vector<Screen<scalar_t>> screens(qe - qb, Screen<scalar_t>(k));
    for (int64_t rb = 0; rb < nr; rb += kReferenceBlock) {
      const int64_t re = std::min(nr, rb + kReferenceBlock);
      // |r|^2 - 2<q, r> in one BLAS call (|q|^2 is added per query by the screen).
      const auto partial = at::addmm(r_norm.slice(0, rb, re).unsqueeze(0), query.slice(0, qb, qe),
                                     ref.slice(0, rb, re).t(), /*beta=*/1, /*alpha=*/-2).contiguous();
      const scalar_t r_norm_max = r_norm.slice(0, rb, re).max().item<scalar_t>();
      at::parallel_for(qb, qe, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t* row = partial.data_ptr<scalar_t>() + (i - qb) * (re - rb);
          Screen<scalar_t>& screen = screens[i - qb];
          screen.set_bound(qn[i], factor * (qn[i] + r_norm_max));
          for (int64_t c = rb; c < re; c += kScanChunk) {
            const int64_t c_end = std::min(re, c + kScanChunk);
            bool any = false;  // vectorised: does any value of the chunk pass the screen (NaN passes)?
            for (int64_t j = c; j < c_end; ++j) any |= !(row[j - rb] > screen.limit);
            if (!any) continue;
            for (int64_t j = c; j < c_end; ++j)
              screen.offer(row[j - rb], j, [&] { return difference_sum<scalar_t, false>(qp + i * d, rp + j * d, d); });
          }
        }
      });
    }
    write_neighbours(screens, qb, k, take_sqrt, out_d, out_i);
  }
}

#if defined(__AVX512F__)
// fp32 at the AVX-512 level: the same screen, fed by our own dot-product kernel instead of a BLAS call, so that no
// (queries x references) tile is ever written to memory and read back: each 8 x 32 block of dot products
// is screened while it is still in registers. (On the AMD benchmark machine torch's MKL also runs this
// product more slowly: 58 GFLOP/s, against about 80 for OpenBLAS, which FAISS uses, and 85 here.)
// References are packed per block into panels of 16 (dimension-major), so one aligned load gives the
// same component of 16 references. Queries are screened 8,192 at a time, which bounds the screens'
// memory (2 k pairs per query) whatever the number of queries.
constexpr int64_t kPanel = 16;             // references per panel: one AVX-512 register
constexpr int64_t kMicroRows = 8;          // queries per micro-tile
constexpr int64_t kPackedRefs = 2048;      // references packed at a time: 1 MB at D = 128, about L2
constexpr int64_t kScreenQueries = 8192;   // queries whose screens are kept at a time

// dots[r][c] = <q_r, ref_c> for 8 queries (rows of `q`, d apart) and the 32 references of two panels.
inline void dot_8x32(const float* q, const float* panel0, const float* panel1, int64_t d, __m512 dots[kMicroRows][2]) {
  // Local accumulators: __m512 may alias any float, so accumulating into `dots` directly would make the
  // compiler store all sixteen to memory after every step.
  __m512 acc[kMicroRows][2];
  for (int r = 0; r < kMicroRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t t = 0; t < d; ++t) {
    const __m512 p0 = _mm512_load_ps(panel0 + t * kPanel), p1 = _mm512_load_ps(panel1 + t * kPanel);
    for (int r = 0; r < kMicroRows; ++r) {
      const __m512 qv = _mm512_set1_ps(q[r * d + t]);
      acc[r][0] = _mm512_fmadd_ps(qv, p0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qv, p1, acc[r][1]);
    }
  }
  for (int r = 0; r < kMicroRows; ++r) dots[r][0] = acc[r][0], dots[r][1] = acc[r][1];
}

void knn_euclidean_avx512(const at::Tensor& query, const at::Tensor& ref, int64_t k, bool take_sqrt,
                          at::Tensor& out_d, at::Tensor& out_i) {
  const int64_t nq = query.size(0), nr = ref.size(0), d = query.size(1);
  const float* qp = query.data_ptr<float>();
  const float* rp = ref.data_ptr<float>();
  const auto q_norm = query.pow(2).sum(1).contiguous();
  const auto r_norm = ref.pow(2).sum(1).contiguous();
  const float *qn = q_norm.data_ptr<float>(), *rn = r_norm.data_ptr<float>();
  const float factor = gram_error_factor<float>(d);
  // Packed panels (two at a time, so an odd panel count gets a zero panel), 64-byte aligned.
  const int64_t max_panels = (std::min(nr, kPackedRefs) + 2 * kPanel - 1) / (2 * kPanel) * 2;
  std::vector<float> packed_store(max_panels * kPanel * d + kPanel);
  float* packed = packed_store.data() + (kPanel - (reinterpret_cast<uintptr_t>(packed_store.data()) / 4) % kPanel) % kPanel;
  for (int64_t qb = 0; qb < nq; qb += kScreenQueries) {
    const int64_t qe = std::min(nq, qb + kScreenQueries);
    std::vector<Screen<float>> screens(qe - qb, Screen<float>(k));
    const int64_t query_tiles = (qe - qb + kMicroRows - 1) / kMicroRows;
    for (int64_t rb = 0; rb < nr; rb += kPackedRefs) {
      const int64_t re = std::min(nr, rb + kPackedRefs);
      const int64_t panels = (re - rb + 2 * kPanel - 1) / (2 * kPanel) * 2;
      at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p)
          for (int64_t c = 0; c < kPanel; ++c) {
            const int64_t j = rb + p * kPanel + c;
            for (int64_t t = 0; t < d; ++t) packed[(p * d + t) * kPanel + c] = j < re ? rp[j * d + t] : 0.0f;
          }
      });
      const float r_norm_max = r_norm.slice(0, rb, re).max().item<float>();
      at::parallel_for(0, query_tiles, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> q_tile(kMicroRows * d, 0.0f);  // the tile's queries, zero rows past the end
        alignas(64) float partial[kMicroRows][2 * kPanel];
        for (int64_t tile = begin; tile < end; ++tile) {
          const int64_t i0 = qb + tile * kMicroRows, rows = std::min(kMicroRows, qe - i0);
          std::copy(qp + i0 * d, qp + (i0 + rows) * d, q_tile.begin());
          std::fill(q_tile.begin() + rows * d, q_tile.end(), 0.0f);
          for (int64_t r = 0; r < rows; ++r)
            screens[i0 - qb + r].set_bound(qn[i0 + r], factor * (qn[i0 + r] + r_norm_max));
          for (int64_t p = 0; p < panels; p += 2) {
            const int64_t j0 = rb + p * kPanel, cols = std::min(2 * kPanel, re - j0);
            __m512 dots[kMicroRows][2];
            dot_8x32(q_tile.data(), packed + p * d * kPanel, packed + (p + 1) * d * kPanel, d, dots);
            // partial = |r|^2 - 2<q, r>; columns past the end get +inf and never pass
            const __mmask16 m0 = cols >= kPanel ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
            const __mmask16 m1 = cols >= 2 * kPanel ? 0xFFFF : cols <= kPanel ? 0 : static_cast<__mmask16>((1u << (cols - kPanel)) - 1);
            const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
            const __m512 rn0 = _mm512_mask_loadu_ps(inf, m0, rn + j0), rn1 = _mm512_mask_loadu_ps(inf, m1, rn + j0 + kPanel);
            const __m512 minus_two = _mm512_set1_ps(-2.0f);
            for (int64_t r = 0; r < rows; ++r) {
              const __m512 v0 = _mm512_fmadd_ps(minus_two, dots[r][0], rn0), v1 = _mm512_fmadd_ps(minus_two, dots[r][1], rn1);
              Screen<float>& screen = screens[i0 - qb + r];
              const __m512 limit = _mm512_set1_ps(screen.limit);
              // not (v > limit): NaN passes, as in the generic path
              if ((_mm512_cmp_ps_mask(v0, limit, _CMP_NGT_UQ) & m0) == 0 && (_mm512_cmp_ps_mask(v1, limit, _CMP_NGT_UQ) & m1) == 0)
                continue;
              _mm512_store_ps(partial[r], v0);
              _mm512_store_ps(partial[r] + kPanel, v1);
              const float* qi = qp + (i0 + r) * d;
              for (int64_t c = 0; c < cols; ++c)
                screen.offer(partial[r][c], j0 + c, [&] { return difference_sum<float, false>(qi, rp + (j0 + c) * d, d); });
            }
          }
        }
      });
    }
    write_neighbours(screens, qb, k, take_sqrt, out_d, out_i);
  }
}
#endif

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
          const scalar_t v = cos_row ? cos_row[j] : difference_sum<scalar_t, true>(qp + i * d, rp + j * d, d);
          if (v <= best.worst()) best.offer(v, j);
        }
        best.write(out_d.data_ptr<scalar_t>() + i * k, out_i.data_ptr<int64_t>() + i * k, [](scalar_t v) { return v; });
      }
    });
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> knn(const at::Tensor& query_in, const at::Tensor& ref_in, int64_t k,
                                       c10::string_view metric_name) {
  check_knn_args(query_in, ref_in, k);
  const Metric metric = parse_metric(std::string(metric_name));
  auto query = query_in.contiguous(), ref = ref_in.contiguous();
  auto out_d = at::empty({query.size(0), k}, query.options());
  auto out_i = at::empty({query.size(0), k}, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_cpu", [&] {
    if (metric == Metric::Euclidean || metric == Metric::SqEuclidean) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<scalar_t, float>) {
        knn_euclidean_avx512(query, ref, k, metric == Metric::Euclidean, out_d, out_i);
        return;
      }
#endif
      knn_euclidean<scalar_t>(query, ref, k, metric == Metric::Euclidean, out_d, out_i);
    } else {
      knn_full<scalar_t>(query, ref, k, metric, out_d, out_i);
    }
  });
  return {out_d, out_i};
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
