# The one definition of the extension's sources, shared by CMakeLists.txt and by the test that checks
# setup.py agrees (tests/test_build.py runs `cmake -P cmake/print_sources.cmake`). Same globs as
# setup.py's extension_sources(), compiled once each: every .cpp under csrc/ but the CPU kernels and, with
# CUDA, every .cu; and as its cpu_level_sources(): the CPU kernels, compiled once per CPU level
# (csrc/ops/cpu/kernels.h).
if(CMAKE_SCRIPT_MODE_FILE)
  set(_audiosiam_glob_flags "")  # CONFIGURE_DEPENDS only exists when configuring a project
else()
  set(_audiosiam_glob_flags CONFIGURE_DEPENDS)
endif()
file(GLOB_RECURSE AUDIOSIAM_CPP_SOURCES ${_audiosiam_glob_flags} RELATIVE "${AUDIOSIAM_ROOT}"
     "${AUDIOSIAM_ROOT}/csrc/*.cpp")
file(GLOB_RECURSE AUDIOSIAM_CUDA_SOURCES ${_audiosiam_glob_flags} RELATIVE "${AUDIOSIAM_ROOT}"
     "${AUDIOSIAM_ROOT}/csrc/*.cu")
file(GLOB AUDIOSIAM_CPU_LEVEL_SOURCES ${_audiosiam_glob_flags} RELATIVE "${AUDIOSIAM_ROOT}"
     "${AUDIOSIAM_ROOT}/csrc/ops/cpu/*.cpp")
list(REMOVE_ITEM AUDIOSIAM_CPP_SOURCES ${AUDIOSIAM_CPU_LEVEL_SOURCES})
list(SORT AUDIOSIAM_CPP_SOURCES)
list(SORT AUDIOSIAM_CPU_LEVEL_SOURCES)
list(SORT AUDIOSIAM_CUDA_SOURCES)
