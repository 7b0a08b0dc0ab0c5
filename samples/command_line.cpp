// How parse_command_line() gets exit statuses out of abseil 20220623:
//
// - --help: parsed with usage flags ignored, then handled here
//   (HandleUsageFlags prints what was asked for and says whether anything
//   was), so that the exit status is ours: 0.
// - a bad flag: abseil reports it on stderr and calls std::exit(1) from
//   inside the parse, with no way to ask it to return instead. An atexit
//   handler, armed only while the parse runs, turns that exit into
//   exit_usage. std::_Exit() is allowed in an atexit handler (std::exit()
//   again would not be); what was buffered is flushed first.
//
// - --help lists the flags of the file that defines them: abseil's
//   default lists only those of a file named after the program (so
//   chat_server's, in main.cpp, needed --helpfull).
//
// Rejected: checking argv against abseil's flag registry before parsing
// (a second parser of abseil's grammar, --flagfile and --undefok
// included, to keep in step with the real one). Newer abseil (20230125
// on) adds ParseAbseilFlagsOnly(); look again at the handler then.
#include "samples/command_line.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"

namespace samples {
namespace {

// The program's name as invoked, without its directory, for messages.
std::string& program_name() {
  static std::string name = "program";
  return name;
}

// True while abseil parses: an exit then is abseil rejecting a flag.
bool parsing = false;

// Says "<program>: <what>; try <program> --help" on stderr.
void say_usage_error(std::string_view what) {
  std::fprintf(stderr, "%s: %.*s; try %s --help\n", program_name().c_str(),
               static_cast<int>(what.size()), what.data(), program_name().c_str());
}

void exit_as_usage_error() {
  if (!parsing) return;
  say_usage_error("bad command line");  // after abseil's own "ERROR: ..." lines
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(exit_usage);
}

}  // namespace

std::vector<char*> parse_command_line(int argc, char** argv, std::string_view usage,
                                      std::string_view flags_file, std::size_t max_arguments) {
  if (argc > 0) {
    const std::string_view invoked = argv[0];
    program_name() = std::string(invoked.substr(invoked.find_last_of('/') + 1));
  }
  // The filters see a flag's file as normalize_filename (below) gives it,
  // "samples/...": the end of `flags_file`. (Debian's absl::string_view is
  // abseil's own, not std::string_view.)
  auto own_file = [file = std::string(flags_file)](absl::string_view flag_file) {
    return !flag_file.empty() &&
           std::string_view(file).ends_with(std::string_view(flag_file.data(), flag_file.size()));
  };
  absl::FlagsUsageConfig config;
  config.contains_help_flags = own_file;
  config.contains_helpshort_flags = own_file;
  // --help names the file from the repository's root ("samples/...").
  config.normalize_filename = [](absl::string_view file) {
    const std::size_t root = file.rfind("samples/");
    if (root != absl::string_view::npos) file.remove_prefix(root);
    while (!file.empty() && file.front() == '/') file.remove_prefix(1);
    return std::string(file);
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(absl::string_view(usage.data(), usage.size()));

  std::atexit(exit_as_usage_error);
  parsing = true;
  std::vector<char*> positional = absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  parsing = false;

  // -1: no usage flag was given; otherwise abseil printed what it asked for.
  if (absl::flags_internal::HandleUsageFlags(std::cout, absl::ProgramUsageMessage()) != -1) {
    std::cout.flush();
    std::exit(0);
  }
  if (positional.size() > max_arguments + 1) {
    usage_error(max_arguments == 0 ? "unexpected argument \"" + std::string(positional[1]) + "\""
                                   : "at most " + std::to_string(max_arguments) + " arguments");
  }
  return positional;
}

void usage_error(std::string_view what) {
  say_usage_error(what);
  std::exit(exit_usage);
}

void error(std::string_view what) {
  std::fprintf(stderr, "%s: %.*s\n", program_name().c_str(), static_cast<int>(what.size()),
               what.data());
}

std::string listen_address(std::string_view host, int port) {
  constexpr int max_port = 65535;
  if (port < 0 || port > max_port) {
    usage_error("--port must be 0 to 65535, not " + std::to_string(port));
  }
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string at = v6 ? "[" : "";
  at += host;
  at += v6 ? "]:" : ":";
  at += std::to_string(port);
  return at;
}

}  // namespace samples
