# Run by `cmake --install` (install(SCRIPT) in the top CMakeLists.txt), so
# that it sees the headers as they are at install time. Installs the
# public headers (every header outside a detail/ folder) and, of the
# detail/ headers, only those the public ones include, directly or
# through each other (their inline templates need them). The rest, such as
# fiber/detail/context.h, which includes Boost.Context, stay in the source
# tree. Needs SPINDLE_SOURCE_DIR and SPINDLE_INCLUDE_DESTINATION.
cmake_policy(VERSION 3.25)  # IN_LIST; a script run by install() starts with no policies
set(installed spindle.h)
foreach(dir fiber sched sync io hook)
  file(GLOB_RECURSE headers RELATIVE ${SPINDLE_SOURCE_DIR} ${SPINDLE_SOURCE_DIR}/${dir}/*.h)
  foreach(h IN LISTS headers)
    if(NOT h MATCHES "/detail/")
      list(APPEND installed ${h})
    endif()
  endforeach()
endforeach()
set(pending ${installed})
while(pending)
  list(POP_FRONT pending h)
  file(STRINGS ${SPINDLE_SOURCE_DIR}/${h} lines REGEX "^#include \"[a-z_]+/")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" inc "${line}")
    if(EXISTS ${SPINDLE_SOURCE_DIR}/${inc} AND NOT inc IN_LIST installed)
      list(APPEND installed ${inc})
      list(APPEND pending ${inc})
    endif()
  endforeach()
endwhile()
foreach(h IN LISTS installed)
  get_filename_component(dir ${h} DIRECTORY)
  file(INSTALL ${SPINDLE_SOURCE_DIR}/${h}
       DESTINATION ${CMAKE_INSTALL_PREFIX}/${SPINDLE_INCLUDE_DESTINATION}/${dir})
endforeach()
