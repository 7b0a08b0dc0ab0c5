// Backtraces of parked fibers and the names of code addresses, for the
// fiber dump (sched/detail/dump.cpp).
//
// Unwinding a fiber that is not the calling thread. A parked fiber's stack
// is copied first (snapshot_parked() in fiber/detail/inspect.h), with the
// registers its switch saved; the unwinder then reads only that copy. We
// hand the copy to libdwfl (elfutils) as the state of a pseudo-thread
// (dwfl_attach_state() with our own callbacks, as a debugger hands it a
// core file's), and it unwinds with the program's CFI (.eh_frame,
// .debug_frame), the same tables the C++ runtime unwinds exceptions with.
// Rejected: frame-pointer walking (the optimized builds omit frame
// pointers, and so does libstdc++), and reading DWARF ourselves (a CFI
// interpreter and a line-table reader are libdw's job, done better).
//
// libdw is loaded at the first dump with dlopen("libdw.so.1"), not linked:
// the library gains no link dependency, and a program on a system without
// elfutils still gets a dump, with function names from the dynamic symbol
// table (dladdr) and only the first frame of each stack (plus whatever a
// frame-pointer chain in the copy yields). Built without the elfutils
// headers, only that fallback is compiled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fiber/detail/inspect.h"

namespace spindle::detail {

// A symbolizer session: holds the process's one symbolizer (its libdw
// state and its cache of names) from construction to destruction, so
// that two dumps at once take turns. Sessions may be opened from any
// thread, including a fiber (which then holds its worker meanwhile: a
// session never parks). At its start a session notices objects loaded or
// unloaded since the last one (dlopen) and re-reads the process's maps.
class symbolize_session {
 public:
  symbolize_session();
  ~symbolize_session();
  symbolize_session(const symbolize_session&) = delete;
  symbolize_session& operator=(const symbolize_session&) = delete;

  // Whether libdw is there: full backtraces with file:line. Otherwise the
  // fallback described at the top of this file.
  bool full() const noexcept;

  // unwind() appends to `pcs` the frames of the parked fiber whose copy
  // is `s`, innermost first, at most `max_frames`: each a code address
  // inside the call (a return address minus one), ready for describe().
  void unwind(const stack_snapshot& s, std::vector<std::uintptr_t>* pcs,
              std::size_t max_frames);

  // describe() names the code at `pc`: "function at file:line", or
  // "function in module" without line information, or "?? in module".
  // Where calls were inlined at `pc`, one line per function, innermost
  // first, the others starting "(inlined into) ".
  // Cached by address: a dump of many fibers has few distinct frames.
  const std::string& describe(std::uintptr_t pc);
};

// demangle() turns a C++ symbol into its readable form (itself if it is
// not a mangled name).
std::string demangle(const char* symbol);

}  // namespace spindle::detail
