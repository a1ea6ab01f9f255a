// A tile of exact distances on the CPU: rows [i0, i1) of x against rows [j0, j1) of y, summed from
// differences (never |x|^2 + |y|^2 - 2<x, y>). Every CPU kernel that needs many exact distances
// (pairwise_distance, its self-distance form, the fused batch-hard loss) computes them through here, so
// one fast path serves them all.
//
// Fast path (fp32 squared differences, D % 16 == 0, the AVX-512 level): blocks of 4 x 4 pairs, each loaded
// vector serving four pairs, so the loop is bound by arithmetic, not loads. Sixteen accumulators plus
// eight loaded vectors fit the 32 AVX-512 registers (plain C++ with the same blocking spilled and ran 4.5x
// slower). Everything else, and the leftover rows and columns, goes through difference_sum. Both paths
// give exactly 0 for a row against itself.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "difference_sum.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {

#if defined(__AVX512F__)
// Lane t of the result is the sum of the 16 lanes of v[t]: a tree of 15 vector additions (with shuffles
// that pair up lanes) instead of 16 separate horizontal reductions of ~8 operations each, which cost
// almost as much as the 4 x 4 block's arithmetic at D = 128.
inline __m512 horizontal_sums_16(const __m512* v) {
  __m512 pairs[8], quads[4], halves[2];
  for (int t = 0; t < 8; ++t)  // per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3)
    pairs[t] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * t], v[2 * t + 1]), _mm512_unpackhi_ps(v[2 * t], v[2 * t + 1]));
  for (int t = 0; t < 4; ++t) {  // per 128-bit lane: that lane's sums of v[4t..4t+3]
    const __m512d a = _mm512_castps_pd(pairs[2 * t]), b = _mm512_castps_pd(pairs[2 * t + 1]);
    quads[t] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  auto fold = [](__m512 a, __m512 b) {  // 128-bit lanes (a0+a1, a2+a3, b0+b1, b2+b3)
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
  };
  halves[0] = fold(quads[0], quads[1]);
  halves[1] = fold(quads[2], quads[3]);
  return fold(halves[0], halves[1]);
}

// Squared differences of x rows r..r+3 (d apart) against y rows c..c+3 (d apart): lane 4r + c.
inline __m512 squared_4x4_avx512(const float* x, const float* y, int64_t d) {
  __m512 acc[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; k += 16) {
    __m512 xv[4], yv[4];
    for (int r = 0; r < 4; ++r) xv[r] = _mm512_loadu_ps(x + r * d + k);
    for (int c = 0; c < 4; ++c) yv[c] = _mm512_loadu_ps(y + c * d + k);
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        const __m512 t = _mm512_sub_ps(xv[r], yv[c]);
        acc[r][c] = _mm512_fmadd_ps(t, t, acc[r][c]);
      }
  }
  return horizontal_sums_16(&acc[0][0]);
}
#endif

// out[(i - i0) * ldo + (j - j0)] = sum_k (x[i, k] - y[j, k])^2 (its square root with kSqrt), or the sum
// of |x[i, k] - y[j, k]| with kAbs, for i in [i0, i1) and j in [j0, j1). x and y are row-major, d columns.
template <typename scalar_t, bool kAbs, bool kSqrt>
void difference_tile(const scalar_t* x, int64_t i0, int64_t i1, const scalar_t* y, int64_t j0, int64_t j1, int64_t d,
                     scalar_t* out, int64_t ldo) {
  auto finish = [](scalar_t s) { return kSqrt ? std::sqrt(s) : s; };
  int64_t i = i0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<scalar_t, float> && !kAbs) {
    if (d % 16 == 0) {
      for (; i + 4 <= i1; i += 4) {
        float* row = out + (i - i0) * ldo;
        int64_t j = j0;
        for (; j + 4 <= j1; j += 4) {
          __m512 block = squared_4x4_avx512(x + i * d, y + j * d, d);
          if constexpr (kSqrt) block = _mm512_sqrt_ps(block);  // 16 roots in one instruction
          // 128-bit lane r holds row r's four columns
          _mm_storeu_ps(row + j - j0, _mm512_extractf32x4_ps(block, 0));
          _mm_storeu_ps(row + ldo + j - j0, _mm512_extractf32x4_ps(block, 1));
          _mm_storeu_ps(row + 2 * ldo + j - j0, _mm512_extractf32x4_ps(block, 2));
          _mm_storeu_ps(row + 3 * ldo + j - j0, _mm512_extractf32x4_ps(block, 3));
        }
        for (; j < j1; ++j)
          for (int r = 0; r < 4; ++r) row[r * ldo + j - j0] = finish(difference_sum<scalar_t, kAbs>(x + (i + r) * d, y + j * d, d));
      }
    }
  }
#endif
  for (; i < i1; ++i) {
    scalar_t* row = out + (i - i0) * ldo;
    for (int64_t j = j0; j < j1; ++j) row[j - j0] = finish(difference_sum<scalar_t, kAbs>(x + i * d, y + j * d, d));
  }
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
