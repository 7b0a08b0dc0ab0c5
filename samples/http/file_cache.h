// An open-file cache for samples/http, as nginx's open_file_cache: what a
// static file costs besides its bytes (realpath, open and fstat, each a
// blocking-pool round trip, and the close, a fourth) is paid once per path
// per `valid` period instead of on every request. Within that period a
// request is served from the cached descriptor and status without a pool
// round trip, and so, like nginx, does not see a file replaced, removed
// or resized meanwhile (a file that shrank ends the connection early, as
// in nginx). Only files that opened are cached; errors are looked up
// again each time (nginx's open_file_cache_errors off).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "io/file.h"
#include "io/fs.h"

namespace httpd::detail {

// A file open for serving, and its status when it was opened. Shared: a
// response sending it keeps it open though the cache drops it meanwhile.
struct open_file {
  spindle::file f;
  spindle::file_status st;
};

class file_cache {
 public:
  // At most `max_entries` paths (0: no cache), each trusted for `valid`.
  file_cache(std::size_t max_entries, std::chrono::milliseconds valid) : max_(max_entries), valid_(valid) {}

  // find() is the entry of `key` opened less than `valid` ago, or null.
  std::shared_ptr<open_file> find(const std::string& key);

  // put() caches `file` as `key`'s, opened now. When the cache is full it
  // first drops the entries that are out of date, then, if none was, one
  // entry of its choosing (nginx drops the least recently used).
  void put(const std::string& key, std::shared_ptr<open_file> file);

  std::size_t size() const;

 private:
  using clock = std::chrono::steady_clock;
  struct entry {
    std::shared_ptr<open_file> file;
    clock::time_point opened;
  };

  const std::size_t max_;
  const std::chrono::milliseconds valid_;
  // Never held across a wait: lookups and inserts only. A dropped entry's
  // descriptor is closed (on the pool) outside it, by whoever lets go of
  // the file last.
  mutable std::mutex mu_;
  std::unordered_map<std::string, entry> entries_;  // guarded by mu_
};

}  // namespace httpd::detail
