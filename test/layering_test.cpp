// Spindle's layering as a test that runs (Go's deps_test.go is the model):
// it reads every #include of the library and the samples and fails on one
// that breaks the policy below. Changing the policy means changing this
// file, in review, not drifting.
//
// The policy:
//  1. The folders are ranked, and a file includes only from its own folder
//     and the folders ranked below it:
//       fiber < sched < sync < io < hook < samples
//     (fiber/ is stacks, switching and the fiber API; sched/ runs fibers
//     and defines fiber/'s spawn entry points, fiber/detail/spawn.h, at
//     link time; sync/ and io/ park through sched/park.h.)
//  2. A folder's detail/ is its own. The one exception: sched/ drives the
//     machinery of fiber/detail/ (control blocks, contexts, stacks, the
//     sanitizer annotations of a switch), and may include those headers;
//     fiber/ and sched/ are one runtime in two layers. Every other folder
//     uses another's public headers only.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const std::map<std::string, int>& ranks() {
  static const std::map<std::string, int> r = {
      {"fiber", 0}, {"sched", 1}, {"sync", 2}, {"io", 3}, {"hook", 4}, {"samples", 5},
  };
  return r;
}

struct include_line {
  std::string file;      // relative to the source root
  int line;
  std::string included;  // as written between the quotes
};

std::vector<include_line> project_includes() {
  const fs::path root = SPINDLE_SOURCE_DIR;
  const std::regex quoted(R"(^\s*#\s*include\s*"([^"]+)\")");
  std::vector<include_line> out;
  for (const auto& [folder, rank] : ranks()) {
    if (!fs::exists(root / folder)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".c")) continue;
      std::ifstream in(entry.path());
      std::string text;
      for (int n = 1; std::getline(in, text); ++n) {
        std::smatch m;
        if (std::regex_search(text, m, quoted)) {
          out.push_back({fs::relative(entry.path(), root).generic_string(), n, m[1].str()});
        }
      }
    }
  }
  return out;
}

std::string folder_of(const std::string& path) { return path.substr(0, path.find('/')); }

bool in_detail(const std::string& path) {
  return path.find("/detail/") != std::string::npos;
}

// Why `inc` breaks the policy, or "" if it does not.
std::string violation(const include_line& inc) {
  const std::string from = folder_of(inc.file);
  const std::string to = folder_of(inc.included);
  const auto to_rank = ranks().find(to);
  if (to_rank == ranks().end()) {
    // A path relative to its own file (samples/chat's "irc.h"), or a
    // header of another tree (test/): the rank check does not apply, but
    // the library itself must use root-relative paths.
    if (from != "samples" && inc.included.find('/') == std::string::npos) {
      return "the library includes by path from the root";
    }
    return "";
  }
  if (to_rank->second > ranks().at(from)) {
    return from + "/ is ranked below " + to + "/ and may not include it";
  }
  if (to != from && in_detail(inc.included) && !(from == "sched" && to == "fiber")) {
    return to + "/detail/ is private to " + to + "/; include its public headers";
  }
  return "";
}

TEST(LayeringTest, EveryIncludeOfTheLibraryAndTheSamplesFollowsTheLayering) {
  const auto includes = project_includes();
  ASSERT_GT(includes.size(), 100u) << "found too few #includes under " << SPINDLE_SOURCE_DIR;
  std::string report;
  for (const auto& inc : includes) {
    const std::string why = violation(inc);
    if (!why.empty()) {
      report += "  " + inc.file + ":" + std::to_string(inc.line) + ": #include \"" +
                inc.included + "\": " + why + "\n";
    }
  }
  EXPECT_TRUE(report.empty()) << "includes that break the layering:\n" << report;
}

// The checker itself: each rule catches what it is for.
TEST(LayeringTest, TheCheckerCatchesAnUpwardIncludeAndAReachIntoAnotherDetail) {
  EXPECT_NE(violation({"fiber/fiber.h", 1, "sched/scheduler.h"}), "");
  EXPECT_NE(violation({"sync/mutex.h", 1, "io/conn.h"}), "");
  EXPECT_NE(violation({"io/conn.cpp", 1, "sched/detail/netpoll.h"}), "");
  EXPECT_NE(violation({"sync/mutex.h", 1, "fiber/detail/control_block.h"}), "");
  EXPECT_EQ(violation({"sched/detail/worker.h", 1, "fiber/detail/control_block.h"}), "");
  EXPECT_EQ(violation({"io/conn.cpp", 1, "sync/mutex.h"}), "");
  EXPECT_EQ(violation({"samples/chat/server.cpp", 1, "io/conn.h"}), "");
}

}  // namespace
