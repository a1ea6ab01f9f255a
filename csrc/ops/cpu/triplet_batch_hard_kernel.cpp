// CPU kernels of the fused batch-hard triplet loss: anchors in parallel, each scanning the batch once.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "../triplet.h"
#include "difference_sum.h"

namespace audiosiam {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_hard_cpu(
    const at::Tensor& embeddings_in, const at::Tensor& labels_in, double margin, double scale, bool squared, bool soft) {
  check_batch(embeddings_in, labels_in);
  auto x = embeddings_in.contiguous();
  auto labels = labels_in.contiguous();
  const int64_t b = x.size(0), d = x.size(1);
  auto terms = at::zeros({b}, x.options());
  auto d_ap = at::zeros({b}, x.options()), d_an = at::zeros({b}, x.options());
  auto pos = at::full({b}, -1, labels.options()), neg = at::full({b}, -1, labels.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "triplet_batch_hard_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const int64_t* lp = labels.data_ptr<int64_t>();
    scalar_t *tp = terms.data_ptr<scalar_t>(), *ap = d_ap.data_ptr<scalar_t>(), *np = d_an.data_ptr<scalar_t>();
    int64_t *pp = pos.data_ptr<int64_t>(), *ngp = neg.data_ptr<int64_t>();
    at::parallel_for(0, b, 4, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        scalar_t best_p = -std::numeric_limits<scalar_t>::infinity();
        scalar_t best_n = std::numeric_limits<scalar_t>::infinity();
        int64_t ip = -1, in = -1;
        for (int64_t j = 0; j < b; ++j) {
          if (j == i) continue;
          const scalar_t s = cpu::difference_sum<scalar_t, false>(xp + i * d, xp + j * d, d);
          const scalar_t dist = squared ? s : std::sqrt(s);
          if (lp[j] == lp[i]) {
            if (dist > best_p) best_p = dist, ip = j;  // strict: ties keep the lower index
          } else if (dist < best_n) {
            best_n = dist, in = j;
          }
        }
        if (ip < 0 || in < 0) continue;
        pp[i] = ip, ngp[i] = in, ap[i] = best_p, np[i] = best_n;
        tp[i] = term_value<scalar_t>(best_p, best_n, margin, scale, soft);
      }
    });
  });
  return {terms, pos, neg, d_ap, d_an};
}

at::Tensor triplet_batch_hard_backward_cpu(const at::Tensor& grad_terms, const at::Tensor& embeddings,
                                           const at::Tensor& positive, const at::Tensor& negative,
                                           const at::Tensor& d_ap, const at::Tensor& d_an, double margin, double scale,
                                           bool squared, bool soft) {
  auto x = embeddings.contiguous();
  auto g = grad_terms.contiguous();
  auto grad = at::zeros_like(x);
  const int64_t b = x.size(0), d = x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "triplet_batch_hard_backward_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t *gp = g.data_ptr<scalar_t>(), *ap = d_ap.data_ptr<scalar_t>(), *np = d_an.data_ptr<scalar_t>();
    const int64_t *pp = positive.data_ptr<int64_t>(), *ngp = negative.data_ptr<int64_t>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    // Serial on purpose: anchors scatter into their positive's and negative's rows, and the whole pass is
    // O(B D), far below the O(B^2 D) forward.
    for (int64_t i = 0; i < b; ++i) {
      if (pp[i] < 0 || gp[i] == 0) continue;
      const scalar_t slope = gp[i] * term_slope<scalar_t>(ap[i], np[i], margin, scale, soft);
      if (slope == 0) continue;
      // d(dist)/d(x_i) = 2 (x_i - x_j) squared, (x_i - x_j) / dist plain (0 at dist 0).
      const scalar_t cp = squared ? 2 * slope : (ap[i] > 0 ? slope / ap[i] : 0);
      const scalar_t cn = squared ? 2 * slope : (np[i] > 0 ? slope / np[i] : 0);
      const scalar_t *xi = xp + i * d, *xpos = xp + pp[i] * d, *xneg = xp + ngp[i] * d;
      scalar_t *gi = out + i * d, *gpos = out + pp[i] * d, *gneg = out + ngp[i] * d;
      for (int64_t k = 0; k < d; ++k) {
        const scalar_t up = cp * (xi[k] - xpos[k]), un = cn * (xi[k] - xneg[k]);
        gi[k] += up - un;
        gpos[k] -= up;
        gneg[k] += un;
      }
    }
  });
  return grad;
}

}  // namespace
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) {
  m.impl("triplet_batch_hard", &audiosiam::triplet_batch_hard_cpu);
  m.impl("_triplet_batch_hard_backward", &audiosiam::triplet_batch_hard_backward_cpu);
}
