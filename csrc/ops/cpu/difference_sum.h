// The inner loop of every exact distance on the CPU: sum over d of (a[d] - b[d])^2 or |a[d] - b[d]|.
//
// One accumulator per SIMD lane lets the compiler vectorise the sum without reassociating floating-point
// additions (no -ffast-math needed), and keeps the summation error small: each lane adds only D / lanes
// terms, all of the same sign.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {

template <typename scalar_t, bool kAbs>
inline scalar_t difference_sum(const scalar_t* a, const scalar_t* b, int64_t d) {
  constexpr int kLanes = 64 / sizeof(scalar_t);  // one 512-bit register
  scalar_t acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= d; k += kLanes) {
    for (int u = 0; u < kLanes; ++u) {
      const scalar_t t = a[k + u] - b[k + u];
      acc[u] += kAbs ? std::abs(t) : t * t;
    }
  }
  scalar_t tail = 0;
  for (; k < d; ++k) {
    const scalar_t t = a[k] - b[k];
    tail += kAbs ? std::abs(t) : t * t;
  }
  for (int u = 0; u < kLanes; ++u) tail += acc[u];
  return tail;
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
