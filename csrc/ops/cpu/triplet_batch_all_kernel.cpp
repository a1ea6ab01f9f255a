// CPU kernel of triplet_batch_all: anchors in parallel, each owning its row of `slope`, so no two threads
// write the same memory. Per anchor, the negatives' distances are gathered once into a contiguous buffer
// and every positive sweeps it in a loop the compiler vectorises.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../triplet.h"

namespace audiosiam {
namespace {

template <typename scalar_t>
void batch_all_impl(const scalar_t* dist, const int64_t* labels, int64_t b, double margin, bool soft,
                    scalar_t* term_sum, int64_t* valid, int64_t* active, scalar_t* slope) {
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> neg_index;
    std::vector<scalar_t> neg_dist, neg_slope;
    for (int64_t a = begin; a < end; ++a) {
      const scalar_t* row = dist + a * b;
      scalar_t* out = slope + a * b;
      neg_index.clear();
      neg_dist.clear();
      for (int64_t n = 0; n < b; ++n)
        if (labels[n] != labels[a]) neg_index.push_back(n), neg_dist.push_back(row[n]);
      const int64_t nn = static_cast<int64_t>(neg_index.size());
      neg_slope.assign(nn, scalar_t(0));
      scalar_t sum = 0;
      int64_t n_valid = 0, n_active = 0;
      for (int64_t p = 0; p < b; ++p) {
        if (p == a || labels[p] != labels[a] || nn == 0) continue;
        const scalar_t d_ap = row[p];
        scalar_t w = 0, s = 0;
        int64_t on = 0;
        for (int64_t t = 0; t < nn; ++t) {
          const scalar_t term = term_value<scalar_t>(d_ap, neg_dist[t], margin, 1.0, soft);
          const scalar_t g = term_slope<scalar_t>(d_ap, neg_dist[t], margin, 1.0, soft);
          s += term;
          on += term > 0;
          w += g;
          neg_slope[t] += g;
        }
        out[p] = w;
        sum += s;
        n_valid += nn;
        n_active += on;
      }
      for (int64_t t = 0; t < nn; ++t) out[neg_index[t]] = -neg_slope[t];
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
    batch_all_impl<scalar_t>(dist.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, margin, soft,
                             out.term_sum.data_ptr<scalar_t>(), out.valid.data_ptr<int64_t>(),
                             out.active.data_ptr<int64_t>(), out.slope.data_ptr<scalar_t>());
  });
  return out.tuple();
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) { m.impl("triplet_batch_all", &audiosiam::triplet_batch_all_cpu); }
