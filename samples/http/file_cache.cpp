// The open-file cache: see file_cache.h.
#include "samples/http/file_cache.h"

#include <utility>
#include <vector>

namespace httpd::detail {

std::shared_ptr<open_file> file_cache::find(const std::string& key) {
  if (max_ == 0) return nullptr;
  std::lock_guard lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end() || clock::now() - it->second.opened >= valid_) return nullptr;
  return it->second.file;
}

void file_cache::put(const std::string& key, std::shared_ptr<open_file> file) {
  if (max_ == 0) return;
  // Dropped entries are released after the lock: the last release of a
  // file closes it, and close() parks on the pool.
  std::vector<std::shared_ptr<open_file>> dropped;
  const clock::time_point now = clock::now();
  std::lock_guard lock(mu_);
  if (entries_.size() >= max_ && !entries_.contains(key)) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (now - it->second.opened >= valid_) {
        dropped.push_back(std::move(it->second.file));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    if (entries_.size() >= max_) {
      dropped.push_back(std::move(entries_.begin()->second.file));
      entries_.erase(entries_.begin());
    }
  }
  entry& e = entries_[key];
  if (e.file) dropped.push_back(std::move(e.file));
  e = entry{std::move(file), now};
}

std::size_t file_cache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace httpd::detail
