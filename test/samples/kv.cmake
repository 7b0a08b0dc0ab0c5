# The key-value sample's tests (samples/kv, docs/kv.md): its commands and
# its limits through hiredis against a server in-process (kv_test.h), and
# the kv_server program itself, with redis-cli.
if(TARGET kv_server_lib)
  # hiredis: pkg-config, as test/hook/libraries.cmake finds it.
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(KV_HIREDIS QUIET IMPORTED_TARGET hiredis)
  endif()
  if(KV_HIREDIS_FOUND)
    foreach(section commands limits)
      spindle_test(kv_${section}_test samples/kv_${section}_test.cpp)
      target_link_libraries(kv_${section}_test PRIVATE kv_server_lib PkgConfig::KV_HIREDIS)
    endforeach()
  else()
    message(WARNING "hiredis not found (Debian package libhiredis-dev): kv_commands_test and "
                    "kv_limits_test are not built")
  endif()
  spindle_test(kv_program_test samples/kv_program_test.cpp)
  add_dependencies(kv_program_test kv_server)
  target_compile_definitions(kv_program_test PRIVATE KV_SERVER_PROGRAM="$<TARGET_FILE:kv_server>")
endif()
