// The CPU kernels' registration with the dispatcher, and the choice of CPU level (cpu_dispatch.h).
//
// Compiled once, with the baseline flags: it runs on every x86-64 CPU, so it may ask the CPU what it has.
// Each op gets one forwarding function that calls the chosen level's entry of its table (kernels.h): an
// atomic load and an indirect call per op call, nothing per element.

#include "cpu_dispatch.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>

#include "cpu/kernels.h"

namespace audiosiam {
namespace cpu {
namespace {

enum Level : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };
constexpr const char* kNames[] = {"default", "avx2", "avx512"};

// The highest level whose kernels this build has and whose instructions this CPU (and its OS: libgcc's
// checks include the saved register state) supports. Each level checks exactly the extensions its flags
// let the compiler use (setup.py, CMakeLists.txt).
int highest_supported() {
#if defined(AUDIOSIAM_CPU_DISPATCH) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return avx512 ? kAvx512 : avx2 ? kAvx2 : kDefault;
#else
  return kDefault;  // one level only: the kernels compiled with the common flags
#endif
}

int parse_level(const std::string& name, const char* what) {
  for (int level = kDefault; level <= kAvx512; ++level)
    if (name == kNames[level]) return level;
  TORCH_CHECK_VALUE(false, "audiosiam: ", what, "='", name, "' is not a CPU level; expected default, avx2 or avx512");
}

// The level from AUDIOSIAM_CPU_CAPABILITY, or the highest supported when it is unset or empty.
int requested_level() {
  const int highest = highest_supported();
  const char* env = std::getenv("AUDIOSIAM_CPU_CAPABILITY");
  if (env == nullptr || *env == '\0') return highest;
  std::string name(env);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const int level = parse_level(name, "AUDIOSIAM_CPU_CAPABILITY");
  if (level > highest) {
    TORCH_WARN("audiosiam: AUDIOSIAM_CPU_CAPABILITY=", env, " asks for more than this CPU or build has; running ",
               kNames[highest], " instead");
    return highest;
  }
  return level;
}

std::atomic<int> override_level{-1};  // set_capability's choice; -1: none

int active_level() {
  const int forced = override_level.load(std::memory_order_relaxed);
  if (forced >= 0) return forced;
  static const int chosen = requested_level();  // once per process (retried only if it threw)
  return chosen;
}

const Kernels& active_kernels() {
  switch (active_level()) {
#if defined(AUDIOSIAM_CPU_DISPATCH)
    case kAvx512:
      return AVX512::kernels;
    case kAvx2:
      return AVX2::kernels;
#endif
    default:
      return DEFAULT::kernels;
  }
}

// A kernel with the signature of the table's entry `Member` that calls the active level's entry.
template <typename Fn, Fn Kernels::*Member>
struct Dispatched;

template <typename R, typename... Args, R (*Kernels::*Member)(Args...)>
struct Dispatched<R (*)(Args...), Member> {
  static R call(Args... args) { return (active_kernels().*Member)(args...); }
};

#define AUDIOSIAM_DISPATCHED(entry) (&Dispatched<decltype(Kernels::entry), &Kernels::entry>::call)

}  // namespace

std::string capability() { return kNames[active_level()]; }

std::vector<std::string> capabilities() {
  std::vector<std::string> names;
  for (int level = kDefault; level <= highest_supported(); ++level) names.emplace_back(kNames[level]);
  return names;
}

std::string set_capability(const std::string& name) {
  const int level = parse_level(name, "level");
  TORCH_CHECK_VALUE(level <= highest_supported(), "audiosiam: level='", name, "': this CPU or build runs at most ",
                    kNames[highest_supported()]);
  const std::string before = capability();
  override_level.store(level, std::memory_order_relaxed);
  return before;
}

}  // namespace cpu
}  // namespace audiosiam

TORCH_LIBRARY_IMPL(audiosiam, CPU, m) {
  using audiosiam::cpu::Dispatched;
  using audiosiam::cpu::Kernels;
  m.impl("pairwise_distance", AUDIOSIAM_DISPATCHED(pairwise_distance));
  m.impl("_pairwise_distance_backward", AUDIOSIAM_DISPATCHED(pairwise_distance_backward));
  m.impl("self_distance", AUDIOSIAM_DISPATCHED(self_distance));
  m.impl("_self_distance_backward", AUDIOSIAM_DISPATCHED(self_distance_backward));
  m.impl("knn", AUDIOSIAM_DISPATCHED(knn));
  m.impl("mel_power", AUDIOSIAM_DISPATCHED(mel_power));
  m.impl("triplet_batch_all", AUDIOSIAM_DISPATCHED(triplet_batch_all));
  m.impl("triplet_batch_hard", AUDIOSIAM_DISPATCHED(triplet_batch_hard));
  m.impl("_triplet_batch_hard_backward", AUDIOSIAM_DISPATCHED(triplet_batch_hard_backward));
  m.impl("triplet_semi_hard_negatives", AUDIOSIAM_DISPATCHED(triplet_semi_hard_negatives));
}
