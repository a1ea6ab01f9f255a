# The one definition of the extension's sources, shared by CMakeLists.txt and by the test that checks
# setup.py agrees (tests/test_build.py runs `cmake -P cmake/print_sources.cmake`). Same globs as
# setup.py's extension_sources(): every .cpp under csrc/ and, with CUDA, every .cu.
if(CMAKE_SCRIPT_MODE_FILE)
  set(_audiosiam_glob_flags "")  # CONFIGURE_DEPENDS only exists when configuring a project
else()
  set(_audiosiam_glob_flags CONFIGURE_DEPENDS)
endif()
file(GLOB_RECURSE AUDIOSIAM_CPP_SOURCES ${_audiosiam_glob_flags} RELATIVE "${AUDIOSIAM_ROOT}"
     "${AUDIOSIAM_ROOT}/csrc/*.cpp")
file(GLOB_RECURSE AUDIOSIAM_CUDA_SOURCES ${_audiosiam_glob_flags} RELATIVE "${AUDIOSIAM_ROOT}"
     "${AUDIOSIAM_ROOT}/csrc/*.cu")
list(SORT AUDIOSIAM_CPP_SOURCES)
list(SORT AUDIOSIAM_CUDA_SOURCES)
