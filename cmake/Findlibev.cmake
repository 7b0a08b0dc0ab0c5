# Finds libev. Debian ships no pkg-config file or CMake package for it,
# so look for the header and the library directly.
# Defines libev_FOUND and the imported target libev::libev.
find_path(LIBEV_INCLUDE_DIR NAMES ev.h)
find_library(LIBEV_LIBRARY NAMES ev)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(libev REQUIRED_VARS LIBEV_LIBRARY LIBEV_INCLUDE_DIR)
if(libev_FOUND AND NOT TARGET libev::libev)
  add_library(libev::libev UNKNOWN IMPORTED)
  set_target_properties(libev::libev PROPERTIES
    IMPORTED_LOCATION "${LIBEV_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LIBEV_INCLUDE_DIR}")
endif()
mark_as_advanced(LIBEV_INCLUDE_DIR LIBEV_LIBRARY)
