// CPU kernel of mel_power (schema and definition: ../mel_power.cpp).
//
// The bands are taken 16 at a time (one AVX-512 register of floats). A group of 16 mel filters is
// non-zero only over a run of bins (on a mel scale each bin feeds at most two bands), so the plan keeps,
// per group, that run of bins and the weights of its 16 bands there, bin-major. Frames go 8 at a time:
// their powers are computed once into a small buffer, then each group is, per bin of its run, one
// multiply-add of a register of 16 weights by that bin's power, for each of the 8 frames (8 independent
// sums hide the multiply-add latency). 64 bands over 257 bins take 266 such steps per frame, where a
// dense product takes 257 x 4 (timings against the reference, the power then a dense product:
// benchmarks/bench_frontend.py). Threads take runs of frames. The AVX2
// level takes each group as two 8-float registers, 4 frames at a time.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
namespace {

constexpr int64_t kLanes = 16;  // bands per group

template <typename scalar_t>
struct Plan {
  std::vector<int64_t> first, end;  // per group: the bins [first, end) where any of its filters is non-zero
  std::vector<int64_t> offset;      // per group: where its (end - first) x kLanes weights start in `weights`
  std::vector<scalar_t> weights;    // bin-major, zero for the lanes past n_mels in the last group
};

template <typename scalar_t>
Plan<scalar_t> make_plan(const at::Tensor& filterbank) {  // (bins, n_mels), contiguous
  const int64_t bins = filterbank.size(0), n_mels = filterbank.size(1);
  const scalar_t* fb = filterbank.data_ptr<scalar_t>();
  Plan<scalar_t> plan;
  for (int64_t m0 = 0; m0 < n_mels; m0 += kLanes) {
    const int64_t lanes = std::min(kLanes, n_mels - m0);
    auto nonzero = [&](int64_t f) {
      for (int64_t k = 0; k < lanes; ++k) if (fb[f * n_mels + m0 + k] != 0) return true;
      return false;
    };
    int64_t first = 0, end = bins;
    while (first < bins && !nonzero(first)) ++first;
    while (end > first && !nonzero(end - 1)) --end;
    plan.first.push_back(first);
    plan.end.push_back(end);
    plan.offset.push_back(static_cast<int64_t>(plan.weights.size()));
    for (int64_t f = first; f < end; ++f) {
      for (int64_t k = 0; k < kLanes; ++k) plan.weights.push_back(k < lanes ? fb[f * n_mels + m0 + k] : 0);
    }
  }
  return plan;
}

// For kRows frames at once: out[r * stride + k] = sum over f in [first, end) of power[r * bins + f] *
// w[(f - first) * kLanes + k], k < kLanes. The frames' sums are independent chains: one chain would wait
// out the latency of every multiply-add (4 cycles); 8 chains keep both FMA units busy.
template <int kRows, typename scalar_t>
inline void fold_group(const scalar_t* power, int64_t bins, const scalar_t* w, int64_t first, int64_t end,
                       scalar_t* out, int64_t stride) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<scalar_t, float>) {  // gcc turns the generic loop into scalar multiply-adds
    __m512 acc[kRows];
    for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t f = first; f < end; ++f, w += kLanes) {
      const __m512 weights = _mm512_loadu_ps(w);
      for (int r = 0; r < kRows; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(power[r * bins + f]), weights, acc[r]);
    }
    for (int r = 0; r < kRows; ++r) _mm512_storeu_ps(out + r * stride, acc[r]);
    return;
  }
#elif defined(__AVX2__) && defined(__FMA__)
  // AVX2 (16 registers of 8 floats): a group's 16 lanes are two registers, so 4 frames at a time keep
  // their 8 sums, the two weight registers and the broadcast power in registers (8 frames would spill).
  if constexpr (std::is_same_v<scalar_t, float>) {
    constexpr int kStep = kRows < 4 ? kRows : 4;
    for (int r0 = 0; r0 < kRows; r0 += kStep) {
      __m256 low[kStep], high[kStep];
      for (int r = 0; r < kStep; ++r) low[r] = high[r] = _mm256_setzero_ps();
      const scalar_t* wf = w;
      for (int64_t f = first; f < end; ++f, wf += kLanes) {
        const __m256 w_low = _mm256_loadu_ps(wf), w_high = _mm256_loadu_ps(wf + 8);
        for (int r = 0; r < kStep; ++r) {
          const __m256 p = _mm256_set1_ps(power[(r0 + r) * bins + f]);
          low[r] = _mm256_fmadd_ps(p, w_low, low[r]);
          high[r] = _mm256_fmadd_ps(p, w_high, high[r]);
        }
      }
      for (int r = 0; r < kStep; ++r) {
        _mm256_storeu_ps(out + (r0 + r) * stride, low[r]);
        _mm256_storeu_ps(out + (r0 + r) * stride + 8, high[r]);
      }
    }
    return;
  }
#endif
  scalar_t acc[kRows][kLanes] = {};
  for (int64_t f = first; f < end; ++f, w += kLanes) {
    for (int r = 0; r < kRows; ++r) {
      const scalar_t p = power[r * bins + f];
      for (int64_t k = 0; k < kLanes; ++k) acc[r][k] += p * w[k];
    }
  }
  for (int r = 0; r < kRows; ++r) std::copy(acc[r], acc[r] + kLanes, out + r * stride);
}

template <int kRows, typename scalar_t>
void fold_rows(const scalar_t* spectrum, const Plan<scalar_t>& plan, int64_t bins, int64_t n_mels, scalar_t* power,
               scalar_t* folded, scalar_t* out) {
  const int64_t groups = static_cast<int64_t>(plan.first.size());
  for (int r = 0; r < kRows; ++r) {
    const scalar_t* s = spectrum + r * bins * 2;
    scalar_t* p = power + r * bins;
    for (int64_t f = 0; f < bins; ++f) p[f] = s[2 * f] * s[2 * f] + s[2 * f + 1] * s[2 * f + 1];
  }
  for (int64_t g = 0; g < groups; ++g) {
    fold_group<kRows>(power, bins, plan.weights.data() + plan.offset[g], plan.first[g], plan.end[g],
                      folded + g * kLanes, groups * kLanes);
  }
  for (int r = 0; r < kRows; ++r) std::copy(folded + r * groups * kLanes, folded + r * groups * kLanes + n_mels, out + r * n_mels);
}

template <typename scalar_t>
void mel_power_kernel(const scalar_t* spectrum, const Plan<scalar_t>& plan, int64_t rows, int64_t bins, int64_t n_mels,
                      scalar_t* out) {
  constexpr int kRows = 8;
  const int64_t groups = static_cast<int64_t>(plan.first.size());
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> power(kRows * bins), folded(kRows * groups * kLanes);
    int64_t r = begin;
    for (; r + kRows <= end; r += kRows) {
      fold_rows<kRows>(spectrum + r * bins * 2, plan, bins, n_mels, power.data(), folded.data(), out + r * n_mels);
    }
    for (; r < end; ++r) fold_rows<1>(spectrum + r * bins * 2, plan, bins, n_mels, power.data(), folded.data(), out + r * n_mels);
  });
}

}  // namespace

at::Tensor mel_power(const at::Tensor& spectrum, const at::Tensor& filterbank) {
  TORCH_CHECK_VALUE(spectrum.dim() == 3 && spectrum.size(2) == 2, "audiosiam: argument 'spectrum': expected ",
                    "(rows, bins, 2), the real view of complex spectra, got shape ", spectrum.sizes());
  TORCH_CHECK_VALUE(filterbank.dim() == 2 && filterbank.size(0) == spectrum.size(1), "audiosiam: argument ",
                    "'filterbank': expected (bins, n_mels) with bins = ", spectrum.size(1), ", got shape ",
                    filterbank.sizes());
  TORCH_CHECK_VALUE(spectrum.scalar_type() == at::kFloat || spectrum.scalar_type() == at::kDouble,
                    "audiosiam: argument 'spectrum': expected float32 or float64, got ", spectrum.scalar_type());
  TORCH_CHECK_VALUE(filterbank.scalar_type() == spectrum.scalar_type(), "audiosiam: argument 'filterbank': has ",
                    "dtype ", filterbank.scalar_type(), " but 'spectrum' has ", spectrum.scalar_type(),
                    "; convert one of them");
  const int64_t rows = spectrum.size(0), bins = spectrum.size(1), n_mels = filterbank.size(1);
  auto out = at::empty({rows, n_mels}, spectrum.options());
  if (rows == 0 || n_mels == 0) return out;
  const auto s = spectrum.contiguous();
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "mel_power_cpu", [&] {
    const auto plan = make_plan<scalar_t>(filterbank.contiguous());
    mel_power_kernel(s.data_ptr<scalar_t>(), plan, rows, bins, n_mels, out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
