// CPU kernel of triplet_batch_all: anchors in parallel, each owning its row of `slope`, so no two threads
// write the same memory. Per anchor, the negatives' distances are gathered once into a contiguous buffer
// and every positive sweeps it in a loop the compiler vectorises.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../triplet.h"

namespace audiosiam {
namespace {

template <typename scalar_t, bool kSoft>
void batch_all_impl(const scalar_t* dist, const int64_t* labels, int64_t b, double margin, scalar_t* term_sum,
                    int64_t* valid, int64_t* active, scalar_t* slope) {
  constexpr int kLanes = 64 / sizeof(scalar_t);  // one 512-bit register
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> neg_index(b);
    std::vector<scalar_t> neg_dist(b), neg_slope(b);
    for (int64_t a = begin; a < end; ++a) {
      const scalar_t* row = dist + a * b;
      scalar_t* out = slope + a * b;
      int64_t nn = 0;
      for (int64_t n = 0; n < b; ++n) {  // branch-free compaction: always write, advance on a negative
        neg_index[nn] = n;
        nn += labels[n] != labels[a];
      }
      for (int64_t t = 0; t < nn; ++t) neg_dist[t] = row[neg_index[t]];
      std::fill(neg_slope.begin(), neg_slope.begin() + nn, scalar_t(0));
      const scalar_t* nd = neg_dist.data();
      scalar_t* ns = neg_slope.data();
      scalar_t sum = 0;
      int64_t n_valid = 0, n_active = 0;
      for (int64_t p = 0; p < b; ++p) {
        if (p == a || labels[p] != labels[a] || nn == 0) continue;
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
      for (int64_t t = 0; t < nn; ++t) out[neg_index[t]] = -ns[t];
      term_sum[a] = sum;
      valid[a] = n_valid;
      active[a] = n_active;
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_all_cpu(const at::Tensor& dist_in,
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

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) { m.impl("triplet_batch_all", &audiosiam::triplet_batch_all_cpu); }
