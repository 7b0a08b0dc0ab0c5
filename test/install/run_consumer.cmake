# Installs the Spindle build in BUILD_DIR into a scratch prefix, then
# configures, builds and runs test/install/consumer against it.
# Usage: cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P run_consumer.cmake
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake needs -D${var}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
# Only the public headers and the detail/ headers they include are
# installed: not the runtime's internals, nor Boost.Context's header.
foreach(internal fiber/detail/context.h sched/detail/worker.h sched/detail/netpoll.h)
  if(EXISTS "${prefix}/include/spindle/${internal}")
    message(FATAL_ERROR "an internal header was installed: ${internal}")
  endif()
endforeach()
if(NOT EXISTS "${prefix}/include/spindle/sync/detail/parking_lot.h")
  message(FATAL_ERROR "a detail/ header that public headers include was not installed")
endif()
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/test/install/consumer" -B "${WORK_DIR}/build"
     "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("${WORK_DIR}/build/consumer")
step("${WORK_DIR}/build/hooked_consumer")

# And as a subproject: add_subdirectory() of the source tree configures the
# library only (tests, benchmarks and samples default to off there).
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/test/install/subproject" -B "${WORK_DIR}/subproject"
     "-DSPINDLE_SOURCE=${SOURCE_DIR}" -G Ninja)

# And LD_PRELOAD: a program linked with the shared libspindle.so alone
# finishes only if the preloaded hook parks its blocking recv().
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/test/install/preload" -B "${WORK_DIR}/preload"
     "-DSPINDLE_SOURCE=${SOURCE_DIR}" -DCMAKE_BUILD_TYPE=Release -G Ninja)
step(${CMAKE_COMMAND} --build "${WORK_DIR}/preload" --target preloaded)
file(READ "${WORK_DIR}/preload/hook_path.txt" hook_path)
execute_process(COMMAND ${CMAKE_COMMAND} -E env "LD_PRELOAD=${hook_path}" "${WORK_DIR}/preload/preloaded"
                RESULT_VARIABLE rc TIMEOUT 120)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the preloaded hook did not park the fiber's recv() (${rc})")
endif()
