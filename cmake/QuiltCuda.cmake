# How CUDA code is built: with nvcc for a GPU, or as host C++ for the simulator (QUILT_CUDA_SIM).
#
#   quilt_cuda_target(<target>)  makes the .cu sources of <target> build either way: under the
#                                simulator they compile as C++20 with kernels/sim/cuda_sim.h
#                                force-included and GCC's -fsanitize=thread instrumentation (every
#                                load and store is then checked by the simulator's memcheck and
#                                racecheck; the sanitizer's own runtime is not linked), and
#                                without strict aliasing: CUDA code reinterprets registers and
#                                vectors freely (uint4 as __nv_bfloat162[4]) and nvcc allows it.
#   quilt_cuda_runtime           the library that CUDA host code links: cudart + cuBLAS(Lt) on a
#                                GPU build, the simulator under QUILT_CUDA_SIM.
function(quilt_cuda_target target)
  get_target_property(sources ${target} SOURCES)
  list(FILTER sources INCLUDE REGEX "\\.cu$")
  if(NOT QUILT_CUDA_SIM)
    target_compile_options(${target} PRIVATE
                           $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
    return()
  endif()
  set_source_files_properties(${sources} PROPERTIES LANGUAGE CXX)
  target_include_directories(${target} BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/kernels/sim/include)
  target_compile_options(${target} PRIVATE
    -include ${CMAKE_SOURCE_DIR}/kernels/sim/cuda_sim.h
    -fsanitize=thread --param=tsan-instrument-func-entry-exit=0
    --param=tsan-distinguish-volatile=0 -fno-strict-aliasing -Wno-unused-parameter -Wno-unknown-pragmas)
  target_link_libraries(${target} PUBLIC quilt_cuda_runtime)
endfunction()
