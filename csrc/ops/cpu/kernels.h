// The CPU kernels, compiled once per CPU level, and the table through which the dispatcher reaches them.
//
// Every file in csrc/ops/cpu/ is compiled once per level, each time with that level's instruction-set
// flags and AUDIOSIAM_CPU_CAPABILITY set to the level's namespace (DEFAULT: baseline x86-64; AVX2: AVX2 +
// FMA; AVX512: AVX-512 F/BW/VL/DQ), as ATen does with its DispatchStub (setup.py and CMakeLists.txt hold
// the flags; a build without AUDIOSIAM_CPU_DISPATCH compiles DEFAULT alone, with the common flags). What
// a file defines lives in audiosiam::cpu::<level>, so the copies never share a name. The files hold no
// static initialisers (code run at load, on every CPU) and no registrations: csrc/ops/cpu_dispatch.cpp,
// compiled once at baseline, picks a level and registers one forwarding function per op.
//
// Inline functions of shared headers (the C++ library, ATen, checks.h) are emitted by every level's
// objects under one name, and the linker keeps the first copy. Both builds therefore link the baseline
// objects before AVX2's and AVX2's before AVX-512's: every caller gets a copy of its own level or lower.
// tests/test_cpu_levels.py checks the built library: no function outside an AVX2 or AVX512 namespace
// holds an AVX instruction.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <tuple>

#ifndef AUDIOSIAM_CPU_CAPABILITY
#define AUDIOSIAM_CPU_CAPABILITY DEFAULT
#endif

namespace audiosiam {
namespace cpu {

// One entry per CPU kernel: the ops' schemas (csrc/ops/*.cpp), in schema order.
struct Kernels {
  at::Tensor (*pairwise_distance)(const at::Tensor& x, const at::Tensor& y, c10::string_view metric);
  std::tuple<at::Tensor, at::Tensor> (*pairwise_distance_backward)(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& y, const at::Tensor& dist,
                                                                   c10::string_view metric);
  at::Tensor (*self_distance)(const at::Tensor& x, c10::string_view metric);
  at::Tensor (*self_distance_backward)(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                       c10::string_view metric);
  std::tuple<at::Tensor, at::Tensor> (*knn)(const at::Tensor& query, const at::Tensor& reference, int64_t k,
                                            c10::string_view metric);
  at::Tensor (*mel_power)(const at::Tensor& spectrum, const at::Tensor& filterbank);
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> (*triplet_batch_all)(const at::Tensor& dist,
                                                                                  const at::Tensor& labels,
                                                                                  double margin, bool soft);
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> (*triplet_batch_hard)(
      const at::Tensor& embeddings, const at::Tensor& labels, double margin, double scale, bool squared, bool soft);
  at::Tensor (*triplet_batch_hard_backward)(const at::Tensor& grad_terms, const at::Tensor& embeddings,
                                            const at::Tensor& positive, const at::Tensor& negative,
                                            const at::Tensor& d_ap, const at::Tensor& d_an, double margin,
                                            double scale, bool squared, bool soft);
  at::Tensor (*triplet_semi_hard_negatives)(const at::Tensor& dist, const at::Tensor& labels, double margin);
};

// Each level's table (kernel_table.cpp, compiled per level): constant data, filled by the linker.
namespace DEFAULT {
extern const Kernels kernels;
}
namespace AVX2 {
extern const Kernels kernels;
}
namespace AVX512 {
extern const Kernels kernels;
}

// The entry points of the level being compiled, defined in the kernel files.
namespace AUDIOSIAM_CPU_CAPABILITY {
at::Tensor pairwise_distance(const at::Tensor& x, const at::Tensor& y, c10::string_view metric);
std::tuple<at::Tensor, at::Tensor> pairwise_distance_backward(const at::Tensor& grad, const at::Tensor& x,
                                                              const at::Tensor& y, const at::Tensor& dist,
                                                              c10::string_view metric);
at::Tensor self_distance(const at::Tensor& x, c10::string_view metric);
at::Tensor self_distance_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dist,
                                  c10::string_view metric);
std::tuple<at::Tensor, at::Tensor> knn(const at::Tensor& query, const at::Tensor& reference, int64_t k,
                                       c10::string_view metric);
at::Tensor mel_power(const at::Tensor& spectrum, const at::Tensor& filterbank);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_all(const at::Tensor& dist,
                                                                             const at::Tensor& labels, double margin,
                                                                             bool soft);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> triplet_batch_hard(
    const at::Tensor& embeddings, const at::Tensor& labels, double margin, double scale, bool squared, bool soft);
at::Tensor triplet_batch_hard_backward(const at::Tensor& grad_terms, const at::Tensor& embeddings,
                                       const at::Tensor& positive, const at::Tensor& negative, const at::Tensor& d_ap,
                                       const at::Tensor& d_an, double margin, double scale, bool squared, bool soft);
at::Tensor triplet_semi_hard_negatives(const at::Tensor& dist, const at::Tensor& labels, double margin);
}  // namespace AUDIOSIAM_CPU_CAPABILITY

}  // namespace cpu
}  // namespace audiosiam
