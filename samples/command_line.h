// The command line of the sample programs: abseil flags, with the exit
// statuses a command-line program is expected to have. Unlike a plain
// absl::ParseCommandLine() (abseil 20220623, Debian's), which exits 1
// both for --help and for a flag it rejects:
//
//   --help            lists the flags of the program's own file (not
//                     abseil's, nor only a file named after the program)
//                     and exits 0; --helpfull lists every flag;
//   a bad command line (an unknown flag, a value that does not parse, a
//                     bad positional argument) says what is wrong on
//                     stderr and exits 2, as a usage error.
//
//   ABSL_FLAG(int, port, 7000, "TCP port to listen on");
//   int main(int argc, char** argv) {
//     std::vector<char*> args = samples::parse_command_line(
//         argc, argv, "An echo server.\nUsage: echo_server [--port=7000]", __FILE__);
//     const std::string at = samples::listen_address("0.0.0.0", absl::GetFlag(FLAGS_port));
//     ...
//   }
//
// Call these from main(), before any other thread (or worker) starts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace samples {

// A usage error's exit status (a bad flag, a bad port, an address that
// cannot be listened on), as for most Unix commands.
inline constexpr int exit_usage = 2;

// parse_command_line() sets the flags from argv and returns the positional
// arguments, the program's name first. `usage` is the text --help shows
// before the flags; `flags_file` is __FILE__ of the file that defines the
// program's flags, those --help lists. Exits 0 after --help (and the other
// abseil usage flags), and exit_usage on a bad flag or on more than
// `max_arguments` positional arguments. Once per program.
std::vector<char*> parse_command_line(int argc, char** argv, std::string_view usage,
                                      std::string_view flags_file, std::size_t max_arguments = 0);

// usage_error() prints "<program>: <what>; try <program> --help" on
// stderr, and exits with exit_usage.
[[noreturn]] void usage_error(std::string_view what);

// listen_address() is "host:port" as spindle::listen takes it, an IPv6
// host in brackets ("::" gives "[::]:6667"). A port outside 0 to 65535 is
// a usage_error(); 0 asks the system for a free port.
std::string listen_address(std::string_view host, int port);

// error() prints "<program>: <what>" on stderr, for a failure that is not
// the command line's fault but ends the program all the same.
void error(std::string_view what);

}  // namespace samples
