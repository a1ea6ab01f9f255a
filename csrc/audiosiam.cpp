// The Python module audiosiam._C.
//
// Importing it loads this shared library, which runs the static registrations of every op
// (TORCH_LIBRARY_FRAGMENT in csrc/ops/*.cpp, TORCH_LIBRARY_IMPL in csrc/ops/{cpu,cuda}/), so the ops
// appear under torch.ops.audiosiam.*. The module itself only reports how it was built.

#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/headeronly/version.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// The namespace is declared once here; each op adds its schema with TORCH_LIBRARY_FRAGMENT.
TORCH_LIBRARY(audiosiam, m) {}

namespace {

std::string simd_level() {
#if defined(__AVX512F__)
  return "AVX512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

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
  info["simd"] = simd_level();
  info["torch_version"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                          "." + std::to_string(TORCH_VERSION_PATCH);
  info["compiler"] = std::string(__VERSION__);
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "audiosiam compiled core: registers the torch.ops.audiosiam.* kernels";
  m.def("build_info", &build_info,
        "How this extension was built: CUDA on/off, OpenMP threads, SIMD level, torch version.");
}
