// The Python module audiosiam._C.
//
// Importing it loads this shared library, which runs the static registrations of every op
// (TORCH_LIBRARY_FRAGMENT in csrc/ops/*.cpp, TORCH_LIBRARY_IMPL in csrc/ops/{cpu,cuda}/), so the ops
// appear under torch.ops.audiosiam.*. The module itself reports how it was built and which CPU level runs.

#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/headeronly/version.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/cpu_dispatch.h"

// The namespace is declared once here; each op adds its schema with TORCH_LIBRARY_FRAGMENT.
TORCH_LIBRARY(audiosiam, m) {}

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef AUDIOSIAM_WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_max_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_max_threads"] = 1;
#endif
  info["torch_threads"] = at::get_num_threads();
  // The CPU kernels' level (csrc/ops/cpu/kernels.h); a bad AUDIOSIAM_CPU_CAPABILITY is reported, not raised,
  // so that `audiosiam info` can show it.
  try {
    info["cpu_capability"] = audiosiam::cpu::capability();
  } catch (const c10::Error& e) {
    info["cpu_capability"] = "error: " + e.msg();
  }
  info["cpu_capabilities"] = audiosiam::cpu::capabilities();
  info["torch_version"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                          "." + std::to_string(TORCH_VERSION_PATCH);
  info["compiler"] = std::string(__VERSION__);
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "audiosiam compiled core: registers the torch.ops.audiosiam.* kernels";
  m.def("build_info", &build_info,
        "How this extension was built: CUDA on/off, OpenMP threads, CPU levels, torch version.");
  m.def("cpu_capability", &audiosiam::cpu::capability,
        "The CPU level the kernels run at: default, avx2 or avx512 (AUDIOSIAM_CPU_CAPABILITY can lower it).");
  m.def("cpu_capabilities", &audiosiam::cpu::capabilities, "The CPU levels this build has and this CPU runs.");
  m.def("_set_cpu_capability", &audiosiam::cpu::set_capability, pybind11::arg("level"),
        "For the op tests only: run the kernels of `level` from now on; returns the level that ran before.");
}
