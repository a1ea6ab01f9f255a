// CPU kernel of triplet_semi_hard_negatives: anchors in parallel, each writing only its own row.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../triplet.h"

namespace audiosiam {
namespace {

template <typename scalar_t>
void semi_hard_impl(const scalar_t* dist, const int64_t* labels, int64_t b, double margin, int64_t* out) {
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      const scalar_t* row = dist + a * b;
      for (int64_t p = 0; p < b; ++p) {
        if (p == a || labels[p] != labels[a]) continue;
        SemiHardChoice<scalar_t> pick;
        for (int64_t n = 0; n < b; ++n)
          if (labels[n] != labels[a]) pick.offer(row[p], row[n], n, margin);
        out[a * b + p] = pick.choice();
      }
    }
  });
}

at::Tensor triplet_semi_hard_negatives_cpu(const at::Tensor& dist_in, const at::Tensor& labels_in, double margin) {
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

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) {
  m.impl("triplet_semi_hard_negatives", &audiosiam::triplet_semi_hard_negatives_cpu);
}
