// CPU kernels of the fused batch-hard triplet loss.
//
// Forward: each pair is computed once. Blocks of anchor rows take the tiles on and above the diagonal
// (difference_tile.h's fast path) and offer every distance d(i, j) to both anchors i and j. Each thread
// keeps its own hardest positive and negative for every anchor (O(B) per thread, no B x B matrix), and
// the threads' choices are merged at the end. Choices compare (distance, index), so a tie goes to the
// lower index whichever order the pairs arrive in, and the result does not depend on the thread count.

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "../triplet.h"
#include "difference_tile.h"
#include "kernels.h"

namespace audiosiam {
namespace cpu {
namespace AUDIOSIAM_CPU_CAPABILITY {
namespace {

constexpr int64_t kAnchorRows = 16;  // rows per block: small enough that the triangle splits evenly
constexpr int64_t kColumnTile = 64;  // columns per tile: 16 x 64 distances stay in L1

// The hardest positive (largest distance) and hardest negative (smallest) offered to each anchor so far.
template <typename scalar_t>
struct HardestChoices {
  std::vector<scalar_t> pos_d, neg_d;
  std::vector<int64_t> pos_i, neg_i;

  explicit HardestChoices(int64_t b)
      : pos_d(b, -std::numeric_limits<scalar_t>::infinity()), neg_d(b, std::numeric_limits<scalar_t>::infinity()),
        pos_i(b, -1), neg_i(b, -1) {}

  void offer_positive(int64_t a, scalar_t d, int64_t j) {
    if (d > pos_d[a] || (d == pos_d[a] && (pos_i[a] < 0 || j < pos_i[a]))) pos_d[a] = d, pos_i[a] = j;
  }
  void offer_negative(int64_t a, scalar_t d, int64_t j) {
    if (d < neg_d[a] || (d == neg_d[a] && (neg_i[a] < 0 || j < neg_i[a]))) neg_d[a] = d, neg_i[a] = j;
  }
  void merge(const HardestChoices& other) {
    for (size_t a = 0; a < pos_d.size(); ++a) {
      if (other.pos_i[a] >= 0) offer_positive(a, other.pos_d[a], other.pos_i[a]);
      if (other.neg_i[a] >= 0) offer_negative(a, other.neg_d[a], other.neg_i[a]);
    }
  }
};

template <typename scalar_t>
HardestChoices<scalar_t> hardest_choices(const scalar_t* x, const int64_t* labels, int64_t b, int64_t d, bool squared) {
  const int64_t nb = (b + kAnchorRows - 1) / kAnchorRows;
  std::vector<std::unique_ptr<HardestChoices<scalar_t>>> per_thread(at::get_num_threads());
  auto block = [&](int64_t blk, HardestChoices<scalar_t>& choices, scalar_t* tile) {
    const int64_t i0 = blk * kAnchorRows, i1 = std::min(b, i0 + kAnchorRows);
    for (int64_t jb = i0; jb < b; jb += kColumnTile) {
      const int64_t je = std::min(b, jb + kColumnTile);
      if (squared)
        difference_tile<scalar_t, false, false>(x, i0, i1, x, jb, je, d, tile, kColumnTile);
      else
        difference_tile<scalar_t, false, true>(x, i0, i1, x, jb, je, d, tile, kColumnTile);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = std::max(jb, i + 1); j < je; ++j) {  // pairs with j > i; each is both anchors' offer
          const scalar_t dist = tile[(i - i0) * kColumnTile + (j - jb)];
          if (labels[i] == labels[j]) {
            choices.offer_positive(i, dist, j);
            choices.offer_positive(j, dist, i);
          } else {
            choices.offer_negative(i, dist, j);
            choices.offer_negative(j, dist, i);
          }
        }
    }
  };
  at::parallel_for(0, (nb + 1) / 2, 1, [&](int64_t begin, int64_t end) {
    const int t = at::get_thread_num();
    if (!per_thread[t]) per_thread[t] = std::make_unique<HardestChoices<scalar_t>>(b);
    std::vector<scalar_t> tile(kAnchorRows * kColumnTile);
    for (int64_t p = begin; p < end; ++p) {  // block p with block nb - 1 - p: every pair of blocks is equal work
      block(p, *per_thread[t], tile.data());
      if (nb - 1 - p != p) block(nb - 1 - p, *per_thread[t], tile.data());
    }
  });
  HardestChoices<scalar_t>* result = nullptr;  // the first thread's choices, merged with the others'
  for (auto& c : per_thread) {
    if (!c) continue;
    if (result) result->merge(*c);
    else result = c.get();
  }
  return result ? std::move(*result) : HardestChoices<scalar_t>(b);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_hard(
    const at::Tensor& embeddings_in, const at::Tensor& labels_in, double margin, double scale, bool squared, bool soft) {
  check_batch(embeddings_in, labels_in);
  auto x = embeddings_in.contiguous();
  auto labels = labels_in.contiguous();
  const int64_t b = x.size(0), d = x.size(1);
  auto terms = at::zeros({b}, x.options());
  auto d_ap = at::zeros({b}, x.options()), d_an = at::zeros({b}, x.options());
  auto pos = at::full({b}, -1, labels.options()), neg = at::full({b}, -1, labels.options());
  if (b == 0) return {terms, pos, neg, d_ap, d_an};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "triplet_batch_hard_cpu", [&] {
    const auto choices = hardest_choices<scalar_t>(x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), b, d, squared);
    scalar_t *tp = terms.data_ptr<scalar_t>(), *ap = d_ap.data_ptr<scalar_t>(), *np = d_an.data_ptr<scalar_t>();
    int64_t *pp = pos.data_ptr<int64_t>(), *ngp = neg.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      if (choices.pos_i[i] < 0 || choices.neg_i[i] < 0) continue;  // no positive or no negative: no term
      pp[i] = choices.pos_i[i], ngp[i] = choices.neg_i[i], ap[i] = choices.pos_d[i], np[i] = choices.neg_d[i];
      tp[i] = term_value<scalar_t>(ap[i], np[i], margin, scale, soft);
    }
  });
  return {terms, pos, neg, d_ap, d_an};
}

at::Tensor triplet_batch_hard_backward(const at::Tensor& grad_terms, const at::Tensor& embeddings,
                                       const at::Tensor& positive, const at::Tensor& negative, const at::Tensor& d_ap,
                                       const at::Tensor& d_an, double margin, double scale, bool squared, bool soft) {
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

}  // namespace AUDIOSIAM_CPU_CAPABILITY
}  // namespace cpu
}  // namespace audiosiam
