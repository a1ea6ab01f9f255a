// CPU kernel of triplet_batch_all: anchors in parallel, each owning its row of `slope`, so no two threads
// write the same memory. Rows are grouped by label once; per anchor, the negatives' distances are gathered
// into a contiguous buffer and every positive sweeps it in a loop the compiler vectorises.

#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../triplet.h"
#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
namespace {

// Rows ordered by label (stably), and for each row the range [first, last) of that order holding its
// class: its positives are order[first, last) (less itself), its negatives order[0, first) and
// order[last, b). No per-anchor label scan is needed.
struct ClassRanges {
  std::vector<int64_t> order, first, last;

  ClassRanges(const int64_t* labels, int64_t b) : order(b), first(b), last(b) {
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return labels[i] < labels[j]; });
    for (int64_t s = 0; s < b;) {
      int64_t e = s + 1;
      while (e < b && labels[order[e]] == labels[order[s]]) ++e;
      for (int64_t t = s; t < e; ++t) first[order[t]] = s, last[order[t]] = e;
      s = e;
    }
  }
};

template <typename scalar_t, bool kSoft>
void batch_all_impl(const scalar_t* dist, const int64_t* labels, int64_t b, double margin, scalar_t* term_sum,
                    int64_t* valid, int64_t* active, scalar_t* slope) {
  constexpr int kLanes = 64 / sizeof(scalar_t);  // one 512-bit register
  const ClassRanges classes(labels, b);
  const int64_t* order = classes.order.data();
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> neg_dist(b), neg_slope(b);
    for (int64_t a = begin; a < end; ++a) {
      const scalar_t* row = dist + a * b;
      scalar_t* out = slope + a * b;
      const int64_t first = classes.first[a], last = classes.last[a];
      const int64_t nn = b - (last - first);
      // The negatives' distances, contiguous: order[0, first) then order[last, b).
      for (int64_t t = 0; t < first; ++t) neg_dist[t] = row[order[t]];
      for (int64_t t = last; t < b; ++t) neg_dist[t - (last - first)] = row[order[t]];
      std::fill(neg_slope.begin(), neg_slope.begin() + nn, scalar_t(0));
      const scalar_t* nd = neg_dist.data();
      scalar_t* ns = neg_slope.data();
      scalar_t sum = 0;
      int64_t n_valid = 0, n_active = 0;
      for (int64_t q = first; q < last && nn > 0; ++q) {
        const int64_t p = order[q];
        if (p == a) continue;
        const scalar_t d_ap = row[p];
        // One partial sum per SIMD lane: the compiler vectorises the loop (it may not reorder a single
        // floating-point sum), and with kSoft a compile-time constant the hinge case is branch-free.
        scalar_t s[kLanes] = {}, w[kLanes] = {}, on[kLanes] = {};
        auto visit = [&](int64_t t, int u) {
          const scalar_t term = term_value<scalar_t>(d_ap, nd[t], margin, 1.0, kSoft);
          const scalar_t g = term_slope<scalar_t>(d_ap, nd[t], margin, 1.0, kSoft);
          s[u] += term;
          on[u] += term > 0 ? scalar_t(1) : scalar_t(0);
          w[u] += g;
          ns[t] += g;
        };
        int64_t t = 0;
        for (; t + kLanes <= nn; t += kLanes)
          for (int u = 0; u < kLanes; ++u) visit(t + u, u);
        for (; t < nn; ++t) visit(t, 0);
        scalar_t w_total = 0;
        for (int u = 0; u < kLanes; ++u) sum += s[u], w_total += w[u], n_active += static_cast<int64_t>(on[u]);
        out[p] = w_total;
        n_valid += nn;
      }
      for (int64_t t = 0; t < first; ++t) out[order[t]] = -ns[t];
      for (int64_t t = last; t < b; ++t) out[order[t]] = -ns[t - (last - first)];
      term_sum[a] = sum;
      valid[a] = n_valid;
      active[a] = n_active;
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_all(const at::Tensor& dist_in,
                                                                             const at::Tensor& labels_in,
                                                                             double margin, bool soft) {
  check_distance_batch(dist_in, labels_in);
  auto dist = dist_in.contiguous(), labels = labels_in.contiguous();
  const int64_t b = dist.size(0);
  BatchAllOutputs out(dist, labels);
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "triplet_batch_all_cpu", [&] {
    auto run = soft ? &batch_all_impl<scalar_t, true> : &batch_all_impl<scalar_t, false>;
    run(dist.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, margin, out.term_sum.data_ptr<scalar_t>(),
        out.valid.data_ptr<int64_t>(), out.active.data_ptr<int64_t>(), out.slope.data_ptr<scalar_t>());
  });
  return out.tuple();
}

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
