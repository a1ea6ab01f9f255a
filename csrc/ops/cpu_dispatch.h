// Which CPU level's kernels run (csrc/ops/cpu/kernels.h), decided once per process.
#pragma once

#include <string>
#include <vector>

namespace audiosiam {
namespace cpu {

// The level the CPU kernels run at: "default", "avx2" or "avx512". Decided on first use: the highest level
// this build has and this CPU runs, or AUDIOSIAM_CPU_CAPABILITY where that names one (a level above the
// CPU's is lowered to the CPU's, with a warning; a name that is no level is an error, raised by this call
// and by every CPU op).
std::string capability();

// The levels this build has and this CPU runs, lowest first.
std::vector<std::string> capabilities();

// For the op tests only: run the kernels of `level` (one of capabilities()) from now on, in this whole
// process; returns the level that ran before. An op running meanwhile on another thread may use either.
std::string set_capability(const std::string& level);

}  // namespace cpu
}  // namespace audiosiam
