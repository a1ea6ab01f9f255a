# Usage: cmake -DAUDIOSIAM_ROOT=<repo> -P cmake/print_sources.cmake
include("${CMAKE_CURRENT_LIST_DIR}/sources.cmake")
foreach(src IN LISTS AUDIOSIAM_CPP_SOURCES AUDIOSIAM_CUDA_SOURCES)
  message(STATUS "${src}")
endforeach()
foreach(src IN LISTS AUDIOSIAM_CPU_LEVEL_SOURCES)
  message(STATUS "per level: ${src}")
endforeach()
