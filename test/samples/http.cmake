# The HTTP sample's tests (samples/http): in-process tests of the server's
# protocol, its static files and a fuzz run, each linking the server's
# library; and the program itself run as a child process, with curl.
if(TARGET http_server_lib)
  foreach(section "" _files _fuzz)
    spindle_test(http_server${section}_test samples/http_server${section}_test.cpp)
    target_link_libraries(http_server${section}_test PRIVATE http_server_lib)
  endforeach()
  spindle_test(http_server_program_test samples/http_server_program_test.cpp)
  add_dependencies(http_server_program_test http_server)
  target_compile_definitions(http_server_program_test PRIVATE
    HTTP_SERVER_PROGRAM="$<TARGET_FILE:http_server>")
endif()
