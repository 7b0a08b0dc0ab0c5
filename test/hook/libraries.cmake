# Real blocking client libraries against real servers the tests start
# themselves (test_servers.h): hiredis against redis-server, libpq against
# PostgreSQL 15, libcurl against Python's http.server, each on fibers
# with spindle::hook. A library whose development package is missing is
# left out here, with a message; the servers are looked for when the
# tests run, and a missing one fails its test, naming the package
# (scripts/test.sh installs them all).
find_package(PkgConfig QUIET)

# The servers (test_servers.h), built once for the three programs.
add_library(spindle_hook_test_servers OBJECT ${CMAKE_CURRENT_LIST_DIR}/test_servers.cpp)

# spindle_library_test(name source library-target): a hook test of a real
# library, with the servers.
function(spindle_library_test name source library)
  spindle_hook_test(${name} ${source})
  target_sources(${name} PRIVATE $<TARGET_OBJECTS:spindle_hook_test_servers>)
  target_link_libraries(${name} PRIVATE ${library})
endfunction()

# hiredis: pkg-config only (Debian's libhiredis-dev ships no CMake package
# in every release).
if(PKG_CONFIG_FOUND)
  pkg_check_modules(HIREDIS QUIET IMPORTED_TARGET hiredis)
endif()
if(HIREDIS_FOUND)
  spindle_library_test(hook_hiredis_test hook/hiredis_test.cpp PkgConfig::HIREDIS)
else()
  message(WARNING "hiredis not found (Debian package libhiredis-dev): hook_hiredis_test is not built")
endif()

# libpq: pkg-config, else CMake's FindPostgreSQL.
if(PKG_CONFIG_FOUND)
  pkg_check_modules(LIBPQ QUIET IMPORTED_TARGET libpq)
endif()
if(LIBPQ_FOUND)
  spindle_library_test(hook_libpq_test hook/libpq_test.cpp PkgConfig::LIBPQ)
else()
  find_package(PostgreSQL QUIET)
  if(PostgreSQL_FOUND)
    spindle_library_test(hook_libpq_test hook/libpq_test.cpp PostgreSQL::PostgreSQL)
  else()
    message(WARNING "libpq not found (Debian package libpq-dev): hook_libpq_test is not built")
  endif()
endif()

# libcurl.
find_package(CURL QUIET)
if(CURL_FOUND)
  spindle_library_test(hook_curl_test hook/curl_test.cpp CURL::libcurl)
else()
  message(WARNING "libcurl not found (Debian package libcurl4-openssl-dev): hook_curl_test is not built")
endif()
