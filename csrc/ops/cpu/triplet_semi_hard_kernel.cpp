// CPU kernel of triplet_semi_hard_negatives: anchors in parallel, each writing only its own row.
//
// Per anchor, its row of distances is copied once with every non-negative replaced by +inf. The hardest
// negative is the same for all the anchor's positives, so it is found once; each positive then takes the
// smallest value inside its semi-hard window (d_ap, d_ap + margin), where +inf never falls, in one
// branch-free pass, and the first (lowest) negative index holding that value. The same choice as
// SemiHardChoice (triplet.h), which the CUDA kernel and the reference make.

#include <ATen/Parallel.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <limits>
#include <type_traits>
#include <vector>

#include "../triplet.h"
#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
namespace {

// min of v[t] over lo < v[t] < hi, +inf if none.
template <typename scalar_t>
scalar_t window_min(const scalar_t* v, int64_t n, scalar_t lo, scalar_t hi) {
  constexpr scalar_t kInf = std::numeric_limits<scalar_t>::infinity();
  scalar_t best = kInf;
  int64_t t = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<scalar_t, float>) {  // gcc leaves this select-and-min loop scalar
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    __m512 acc = _mm512_set1_ps(kInf);
    for (; t + 16 <= n; t += 16) {
      const __m512 x = _mm512_loadu_ps(v + t);
      const __mmask16 in = _mm512_cmp_ps_mask(x, vlo, _CMP_GT_OQ) & _mm512_cmp_ps_mask(x, vhi, _CMP_LT_OQ);
      acc = _mm512_mask_min_ps(acc, in, acc, x);
    }
    best = _mm512_reduce_min_ps(acc);
  }
#endif
  for (; t < n; ++t)
    if (v[t] > lo && v[t] < hi && v[t] < best) best = v[t];
  return best;
}

template <typename scalar_t>
void semi_hard_impl(const scalar_t* dist, const int64_t* labels, int64_t b, double margin, int64_t* out) {
  constexpr scalar_t kInf = std::numeric_limits<scalar_t>::infinity();
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> masked(b);
    for (int64_t a = begin; a < end; ++a) {
      const scalar_t* row = dist + a * b;
      int64_t hardest = -1;
      for (int64_t n = 0; n < b; ++n) {
        const bool neg = labels[n] != labels[a];
        masked[n] = neg ? row[n] : kInf;
        // strict <: the first of equal distances; the first negative is taken whatever its value
        if (neg && (hardest < 0 || row[n] < row[hardest])) hardest = n;
      }
      if (hardest < 0) continue;  // no negative for any positive of this anchor: out stays -1
      for (int64_t p = 0; p < b; ++p) {
        if (p == a || labels[p] != labels[a]) continue;
        const scalar_t lo = row[p], hi = row[p] + static_cast<scalar_t>(margin);
        const scalar_t best = window_min(masked.data(), b, lo, hi);
        int64_t pick = hardest;
        if (best < kInf)
          for (int64_t n = 0; n < b; ++n)
            if (masked[n] == best) {  // a value inside the window, and only negatives can be inside it
              pick = n;
              break;
            }
        out[a * b + p] = pick;
      }
    }
  });
}

}  // namespace

at::Tensor triplet_semi_hard_negatives(const at::Tensor& dist_in, const at::Tensor& labels_in, double margin) {
  check_distance_batch(dist_in, labels_in);
  auto dist = dist_in.contiguous(), labels = labels_in.contiguous();
  const int64_t b = dist.size(0);
  auto out = at::full({b, b}, -1, labels.options());
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "triplet_semi_hard_negatives_cpu", [&] {
    semi_hard_impl<scalar_t>(dist.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, margin,
                             out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
