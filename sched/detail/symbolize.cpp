// Backtraces and symbols for the fiber dump; why it works this way is at
// the top of symbolize.h.
//
// The libdw state is one Dwfl for the process, built at the first dump and
// kept: reading /proc/self/maps and opening every object's ELF file costs
// milliseconds, and its caches (CFI, line tables, symbol tables) are what
// make the 100,000th unwind cheap. It is rebuilt when the set of loaded
// objects changed (dl_iterate_phdr's adds and subs counters), so that a
// library dlopen'ed after the first dump is found. Everything lives under
// one mutex: libdwfl is not thread-safe, and the callbacks it makes read
// which stack copy is being unwound from that state.
#include "sched/detail/symbolize.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "fiber/lock_holder.h"

#if __has_include(<elfutils/libdwfl.h>) && __has_include(<dwarf.h>)
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#define SPINDLE_HAVE_LIBDW_HEADERS 1
#else
#define SPINDLE_HAVE_LIBDW_HEADERS 0
#endif

namespace spindle::detail {

std::string demangle(const char* symbol) {
  if (symbol == nullptr) return "??";
  int status = 0;
  char* readable = abi::__cxa_demangle(symbol, nullptr, nullptr, &status);
  if (status != 0 || readable == nullptr) return symbol;
  std::string out(readable);
  std::free(readable);
  return out;
}

namespace {

const char* base_name(const char* path) {
  if (path == nullptr) return "??";
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

std::string hex(std::uintptr_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%zx", static_cast<std::size_t>(v));
  return buf;
}

// The number of objects the dynamic linker has loaded and unloaded so
// far: a change means /proc/self/maps changed under the Dwfl.
unsigned long long objects_generation() {
  unsigned long long gen = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t size, void* arg) -> int {
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
          *static_cast<unsigned long long*>(arg) = info->dlpi_adds + info->dlpi_subs;
        }
        return 1;  // the counters are the same in every entry
      },
      &gen);
  return gen;
}

// The executable segments of the loaded objects: where a pc read from a
// stack copy may be looked at as code.
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> executable_ranges() {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto* ranges = static_cast<std::vector<std::pair<std::uintptr_t, std::uintptr_t>>*>(arg);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
          const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
          ranges->emplace_back(begin, begin + ph.p_memsz);
        }
        return 0;
      },
      &out);
  return out;
}

// Where the unwind starts. A switch made by jump_inline()
// (fiber/detail/inline_switch.h) saved the address of the instruction
// after its jmp, with rsp 128 bytes (the red zone it stepped over) below
// the frame the compiler knows: the unwind starts there, at that
// instruction, as the function's CFI describes it once rsp is back. A
// switch made by a call to jump_fcontext saved a return address: the
// caller's frame as after the call returns.
struct start_registers {
  std::uintptr_t pc = 0;
  std::uintptr_t sp = 0;
  bool inline_switch = false;
};

start_registers start_of(const stack_snapshot& s,
                         const std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& code) {
  // lea 0x80(%rsp),%rsp: the instruction jump_inline() resumes at.
  static constexpr unsigned char resume[8] = {0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00};
  start_registers r{s.rip, s.rsp, false};
  for (const auto& [begin, end] : code) {
    if (s.rip >= begin && s.rip + sizeof resume <= end) {
      r.inline_switch = std::memcmp(reinterpret_cast<const void*>(s.rip), resume, sizeof resume) == 0;
      break;
    }
  }
  if (r.inline_switch) r.sp += 128;
  return r;
}

// ---- Without libdw ----

std::string describe_with_dladdr(std::uintptr_t pc) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(pc), &info) == 0) return "??";
  std::string out = info.dli_sname != nullptr ? demangle(info.dli_sname) : "??";
  out += " in ";
  out += base_name(info.dli_fname);
  if (info.dli_sname == nullptr && info.dli_fbase != nullptr) {
    out += "+" + hex(pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
  }
  return out;
}

// The first frame, then the frame-pointer chain as far as it stays inside
// the copy and goes up the stack: right for code built with frame
// pointers, and harmless otherwise (nothing outside the copy is read).
void unwind_with_frame_pointers(const stack_snapshot& s, const start_registers& start,
                                std::vector<std::uintptr_t>* pcs, std::size_t max_frames) {
  if (max_frames == 0 || start.pc == 0) return;
  pcs->push_back(start.inline_switch ? start.pc : start.pc - 1);
  std::uintptr_t fp = s.rbp;
  while (pcs->size() < max_frames) {
    std::uint64_t next = 0, ret = 0;
    if (!s.read(fp, &next) || !s.read(fp + 8, &ret) || ret == 0 || next <= fp) break;
    pcs->push_back(static_cast<std::uintptr_t>(ret) - 1);
    fp = static_cast<std::uintptr_t>(next);
  }
}

#if SPINDLE_HAVE_LIBDW_HEADERS

// ---- libdw, loaded at run time ----

// The functions we take from libdw.so.1, typed from the header's own
// prototypes (decltype does not odr-use them: nothing is linked).
#define SPINDLE_LIBDW_FUNCTIONS(X)  \
  X(dwfl_begin)                     \
  X(dwfl_end)                       \
  X(dwfl_errmsg)                    \
  X(dwfl_report_begin)              \
  X(dwfl_report_end)                \
  X(dwfl_linux_proc_report)         \
  X(dwfl_linux_proc_find_elf)       \
  X(dwfl_standard_find_debuginfo)   \
  X(dwfl_build_id_find_debuginfo)   \
  X(dwfl_attach_state)              \
  X(dwfl_getthread_frames)          \
  X(dwfl_frame_pc)                  \
  X(dwfl_thread_state_registers)    \
  X(dwfl_thread_state_register_pc)  \
  X(dwfl_addrmodule)                \
  X(dwfl_module_addrinfo)           \
  X(dwfl_module_info)               \
  X(dwfl_module_getsrc)             \
  X(dwfl_lineinfo)                  \
  X(dwfl_module_addrdie)            \
  X(dwarf_getscopes)                \
  X(dwarf_getscopes_die)            \
  X(dwarf_tag)                      \
  X(dwarf_diename)                  \
  X(dwarf_attr)                     \
  X(dwarf_attr_integrate)           \
  X(dwarf_formstring)               \
  X(dwarf_formudata)                \
  X(dwarf_getsrcfiles)              \
  X(dwarf_filesrc)

struct libdw_api {
#define SPINDLE_LIBDW_MEMBER(name) decltype(&::name) name = nullptr;
  SPINDLE_LIBDW_FUNCTIONS(SPINDLE_LIBDW_MEMBER)
#undef SPINDLE_LIBDW_MEMBER
  // Optional (elfutils 0.185): without it, no unwind is reused.
  decltype(&::dwfl_frame_reg) dwfl_frame_reg = nullptr;
};

// Loads libdw; nullptr if the system lacks it (or an older one lacks a
// function we use: the custom-state unwinding API is from elfutils 0.158).
const libdw_api* load_libdw() {
  void* handle = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return nullptr;
  auto* api = new libdw_api;  // for the process's life, as the library
#define SPINDLE_LIBDW_LOAD(name)                                        \
  api->name = reinterpret_cast<decltype(&::name)>(dlsym(handle, #name)); \
  if (api->name == nullptr) {                                           \
    delete api;                                                         \
    return nullptr;                                                     \
  }
  SPINDLE_LIBDW_FUNCTIONS(SPINDLE_LIBDW_LOAD)
#undef SPINDLE_LIBDW_LOAD
  api->dwfl_frame_reg = reinterpret_cast<decltype(&::dwfl_frame_reg)>(dlsym(handle, "dwfl_frame_reg"));
  return api;
}

#endif  // SPINDLE_HAVE_LIBDW_HEADERS

// A stack's shape, to unwind a fiber parked where another was without
// libdwfl (which costs tens of microseconds a stack: 100,000 fibers parked
// at one place would take seconds). Two copies that resume at the same pc
// with the same depth, and hold the same return addresses at the slots
// where the first one's unwind found them, unwind the same way: CFI rules
// depend on the pc alone, and each frame's slot on the frames below it.
struct stack_shape {
  std::vector<std::uintptr_t> pcs;       // the unwind's result
  std::vector<std::uintptr_t> offsets;   // of each return address, from rsp
  std::vector<std::uint64_t> returns;    // the return addresses there
};

struct shape_key {
  std::uintptr_t pc;
  std::uintptr_t depth;
  bool operator==(const shape_key&) const = default;
};
struct shape_key_hash {
  std::size_t operator()(const shape_key& k) const noexcept {
    return std::hash<std::uintptr_t>()(k.pc * 31 + k.depth);
  }
};

struct symbolizer_state {
  bool loaded = false;
  unsigned long long generation = 0;  // of the objects below
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> code;
  std::unordered_map<std::uintptr_t, std::string> names;
  std::unordered_map<shape_key, stack_shape, shape_key_hash> shapes;
#if SPINDLE_HAVE_LIBDW_HEADERS
  const libdw_api* dw = nullptr;  // nullptr: the fallback
  Dwfl* dwfl = nullptr;
  Dwfl_Callbacks callbacks{};
  char* debuginfo_path = nullptr;
  pid_t pid = 0;
  // The copy being unwound and where to start, for the callbacks.
  const stack_snapshot* current = nullptr;
  start_registers start;
#endif
};

os_mutex g_mu;
// Never destroyed: a dump may run while the process exits.
symbolizer_state* g_state SPINDLE_GUARDED_BY(g_mu) = nullptr;

#if SPINDLE_HAVE_LIBDW_HEADERS

// ---- libdwfl's view of a fiber: one pseudo-thread, frozen in the copy ----

pid_t next_thread(Dwfl*, void* dwfl_arg, void** thread_argp) {
  if (*thread_argp != nullptr) return 0;  // one thread only
  *thread_argp = dwfl_arg;
  return static_cast<symbolizer_state*>(dwfl_arg)->pid;
}

bool get_thread(Dwfl*, pid_t, void* dwfl_arg, void** thread_argp) {
  *thread_argp = dwfl_arg;
  return true;
}

// Reads the stack copy, and nothing else: an address outside it ends the
// unwind there. Never the fiber's live stack, which may be running again.
bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* dwfl_arg) {
  const stack_snapshot* s = static_cast<symbolizer_state*>(dwfl_arg)->current;
  std::uint64_t word = 0;
  if (s == nullptr || !s->read(static_cast<std::uintptr_t>(addr), &word)) return false;
  *result = word;
  return true;
}

// The registers Boost.Context saved, in DWARF's x86-64 numbering: 3 rbx,
// 6 rbp, 7 rsp, 12-15 r12-r15. The others are the caller-saved ones, dead
// across the switch's call: left undefined, so that a rule that needs one
// stops the unwind rather than inventing a frame.
bool set_initial_registers(Dwfl_Thread* thread, void* thread_arg) {
  const auto* st = static_cast<symbolizer_state*>(thread_arg);
  const stack_snapshot& s = *st->current;
  const Dwarf_Word rbx = s.rbx;
  const Dwarf_Word rbp_rsp[2] = {s.rbp, st->start.sp};
  const Dwarf_Word r12_r15[4] = {s.r12, s.r13, s.r14, s.r15};
  if (!st->dw->dwfl_thread_state_registers(thread, 3, 1, &rbx) ||
      !st->dw->dwfl_thread_state_registers(thread, 6, 2, rbp_rsp) ||
      !st->dw->dwfl_thread_state_registers(thread, 12, 4, r12_r15)) {
    return false;
  }
  st->dw->dwfl_thread_state_register_pc(thread, st->start.pc);
  return true;
}

const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
    .detach = nullptr,
    .thread_detach = nullptr,
};

// debuginfod (a download of a library's debug information, seconds to
// minutes) has no place in a dump of a stuck server: where the
// environment enables it, only local separate debug files are looked for.
int find_debuginfo(Dwfl_Module* mod, void** userdata, const char* modname, Dwarf_Addr base,
                   const char* file_name, const char* debuglink_file, GElf_Word debuglink_crc,
                   char** debuginfo_file_name) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  const libdw_api* dw = g_state->dw;
  const char* urls = std::getenv("DEBUGINFOD_URLS");
  if (urls != nullptr && urls[0] != '\0') {
    return dw->dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name,
                                            debuglink_file, debuglink_crc, debuginfo_file_name);
  }
  return dw->dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
                                          debuglink_file, debuglink_crc, debuginfo_file_name);
}

// (Re)builds the Dwfl from /proc/self/maps; st.dwfl stays nullptr if
// libdwfl refuses (then the fallback serves).
void build_dwfl(symbolizer_state& st) {
  if (st.dwfl != nullptr) st.dw->dwfl_end(st.dwfl);
  st.dwfl = nullptr;
  st.pid = getpid();
  st.callbacks.find_elf = st.dw->dwfl_linux_proc_find_elf;
  st.callbacks.find_debuginfo = find_debuginfo;
  st.callbacks.debuginfo_path = &st.debuginfo_path;
  Dwfl* dwfl = st.dw->dwfl_begin(&st.callbacks);
  if (dwfl == nullptr) return;
  st.dw->dwfl_report_begin(dwfl);
  const int rc = st.dw->dwfl_linux_proc_report(dwfl, st.pid);
  if (st.dw->dwfl_report_end(dwfl, nullptr, nullptr) != 0 || rc != 0 ||
      !st.dw->dwfl_attach_state(dwfl, nullptr, st.pid, &thread_callbacks, &st)) {
    st.dw->dwfl_end(dwfl);
    return;
  }
  st.dwfl = dwfl;
}

struct frame_sink {
  const libdw_api* dw;
  std::vector<std::uintptr_t>* pcs;
  std::size_t max;
  bool inline_switch;
  // Where each caller's return address was (its frame's rsp - 8), and
  // what it was; shape_ok false if some frame's rsp is unknown.
  stack_shape* shape;
  bool shape_ok;
};

int on_frame(Dwfl_Frame* frame, void* arg) {
  auto* sink = static_cast<frame_sink*>(arg);
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!sink->dw->dwfl_frame_pc(frame, &pc, &activation) || pc == 0) return DWARF_CB_ABORT;
  // libdwfl takes the initial state for an activation (an interrupted
  // instruction): right for an inline switch, but a call's saved pc is a
  // return address.
  if (sink->pcs->empty()) {
    activation = sink->inline_switch;
  } else if (sink->shape_ok) {
    Dwarf_Word sp = 0;
    if (sink->dw->dwfl_frame_reg != nullptr && sink->dw->dwfl_frame_reg(frame, 7, &sp) == 0) {
      sink->shape->offsets.push_back(static_cast<std::uintptr_t>(sp) - 8);
      sink->shape->returns.push_back(pc);
    } else {
      sink->shape_ok = false;
    }
  }
  sink->pcs->push_back(static_cast<std::uintptr_t>(activation ? pc : pc - 1));
  return sink->pcs->size() < sink->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

// The name of a function's DIE: its linkage name demangled (qualified,
// with the parameter types), else its plain name.
std::string die_function_name(const libdw_api& dw, Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (unsigned at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dw.dwarf_attr_integrate(die, at, &attr) != nullptr) {
      if (const char* linkage = dw.dwarf_formstring(&attr); linkage != nullptr) {
        return demangle(linkage);
      }
    }
  }
  const char* name = dw.dwarf_diename(die);
  return name != nullptr ? name : "??";
}

// The functions inlined at `pc`, innermost first, each with the place
// in its caller where it was inlined (DW_AT_call_file, DW_AT_call_line):
// what turns "outer() at inner.h:12" into the two frames it is.
struct inlined_frame {
  std::string function;
  std::string call_file;
  int call_line = 0;
};

std::vector<inlined_frame> inlined_at(const libdw_api& dw, Dwfl_Module* mod, std::uintptr_t pc) {
  std::vector<inlined_frame> out;
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dw.dwfl_module_addrdie(mod, pc, &bias);
  if (cu == nullptr) return out;
  // dwarf_getscopes() finds the innermost scope at pc, but above an
  // inlined instance it goes on in the inlined function's abstract
  // definition; the chain of instances, each inlined into the next, is
  // what dwarf_getscopes_die() gives from the innermost one.
  Dwarf_Die* at_pc = nullptr;
  const int n_at_pc = dw.dwarf_getscopes(cu, pc - bias, &at_pc);
  Dwarf_Die* scopes = nullptr;
  int n = 0;
  for (int i = 0; i < n_at_pc; ++i) {
    if (dw.dwarf_tag(&at_pc[i]) == DW_TAG_inlined_subroutine) {
      n = dw.dwarf_getscopes_die(&at_pc[i], &scopes);
      break;
    }
  }
  std::free(at_pc);
  Dwarf_Files* files = nullptr;
  std::size_t nfiles = 0;
  const bool have_files = n > 0 && dw.dwarf_getsrcfiles(cu, &files, &nfiles) == 0;
  for (int i = 0; i < n; ++i) {
    const int tag = dw.dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram) break;
    if (tag != DW_TAG_inlined_subroutine) continue;  // a lexical block
    inlined_frame f;
    f.function = die_function_name(dw, &scopes[i]);
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    if (have_files && dw.dwarf_attr(&scopes[i], DW_AT_call_file, &attr) != nullptr &&
        dw.dwarf_formudata(&attr, &value) == 0 && value < nfiles) {
      if (const char* file = dw.dwarf_filesrc(files, value, nullptr, nullptr); file != nullptr) {
        f.call_file = file;
      }
    }
    if (dw.dwarf_attr(&scopes[i], DW_AT_call_line, &attr) != nullptr &&
        dw.dwarf_formudata(&attr, &value) == 0) {
      f.call_line = static_cast<int>(value);
    }
    out.push_back(std::move(f));
  }
  std::free(scopes);
  return out;
}

// The standard library's calling plumbing (std::invoke, std::apply and
// their helpers), inlined between a fiber's entry and its function: left
// out of the inlined frames, where it would take a dozen lines a stack.
bool is_plumbing(const std::string& function) {
  for (const char* prefix : {"__invoke", "invoke<", "__apply_impl", "apply<", "std::__invoke",
                             "std::invoke<", "std::__apply_impl", "std::apply<"}) {
    if (function.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

void append_location(std::string* out, const char* file, int line) {
  if (file == nullptr || file[0] == '\0') return;
  *out += " at ";
  *out += file;
  *out += ":" + std::to_string(line);
}

// One frame's text; a frame with functions inlined into it is several
// lines, innermost first, the later ones marked "(inlined into)".
std::string describe_with_libdw(const symbolizer_state& st, std::uintptr_t pc) {
  const libdw_api& dw = *st.dw;
  Dwfl_Module* mod = dw.dwfl_addrmodule(st.dwfl, pc);
  if (mod == nullptr) return describe_with_dladdr(pc);
  GElf_Off offset = 0;
  GElf_Sym sym{};
  const char* name = dw.dwfl_module_addrinfo(mod, pc, &offset, &sym, nullptr, nullptr, nullptr);
  int line = 0;
  const char* file = nullptr;
  if (Dwfl_Line* l = dw.dwfl_module_getsrc(mod, pc); l != nullptr) {
    file = dw.dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
  }
  if (file == nullptr) {
    Dwarf_Addr start = 0;
    const char* module =
        dw.dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
    std::string out = demangle(name);
    out += " in ";
    out += base_name(module);
    if (name == nullptr) out += "+" + hex(pc - start);
    return out;
  }
  // pc's line belongs to the innermost inlined function; each one's call
  // site is the line of the function around it.
  std::string out;
  const std::vector<inlined_frame> inlined = inlined_at(dw, mod, pc);  // `file` may point here
  for (const inlined_frame& f : inlined) {
    if (!is_plumbing(f.function)) {
      out += f.function;
      append_location(&out, file, line);
      out += "\n(inlined into) ";
    }
    file = f.call_file.empty() ? nullptr : f.call_file.c_str();
    line = f.call_line;
  }
  out += demangle(name);
  append_location(&out, file, line);
  return out;
}

#endif  // SPINDLE_HAVE_LIBDW_HEADERS

}  // namespace

symbolize_session::symbolize_session() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  g_mu.lock();
  if (g_state == nullptr) g_state = new symbolizer_state;
  symbolizer_state& st = *g_state;
  const unsigned long long generation = objects_generation();
  const bool changed = !st.loaded || generation != st.generation;
  if (changed) {
    // Objects came or went: their addresses may now mean other code.
    st.generation = generation;
    st.code = executable_ranges();
    st.names.clear();
    st.shapes.clear();
  }
#if SPINDLE_HAVE_LIBDW_HEADERS
  if (!st.loaded) st.dw = load_libdw();
  if (st.dw != nullptr && (changed || st.dwfl == nullptr)) build_dwfl(st);
#endif
  st.loaded = true;
}

symbolize_session::~symbolize_session() SPINDLE_NO_THREAD_SAFETY_ANALYSIS { g_mu.unlock(); }

bool symbolize_session::full() const noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
#if SPINDLE_HAVE_LIBDW_HEADERS
  return g_state->dwfl != nullptr;
#else
  return false;
#endif
}

void symbolize_session::unwind(const stack_snapshot& s, std::vector<std::uintptr_t>* pcs,
                               std::size_t max_frames) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  symbolizer_state& st = *g_state;
  const start_registers start = start_of(s, st.code);
#if SPINDLE_HAVE_LIBDW_HEADERS
  if (st.dwfl != nullptr && max_frames > 0) {
    // Fast path: a fiber parked where one before it was.
    const shape_key key{start.pc, s.end() - s.rsp};
    if (auto it = st.shapes.find(key); it != st.shapes.end()) {
      const stack_shape& shape = it->second;
      bool same = true;
      for (std::size_t i = 0; same && i < shape.offsets.size(); ++i) {
        std::uint64_t word = 0;
        same = s.read(s.rsp + shape.offsets[i], &word) && word == shape.returns[i];
      }
      if (same) {
        pcs->insert(pcs->end(), shape.pcs.begin(),
                    shape.pcs.begin() + static_cast<std::ptrdiff_t>(
                                            std::min(max_frames, shape.pcs.size())));
        return;
      }
    }
    // Slow path: libdwfl unwinds the copy.
    st.current = &s;
    st.start = start;
    stack_shape shape;
    const std::size_t first = pcs->size();
    frame_sink sink{st.dw, pcs, max_frames, start.inline_switch, &shape, true};
    // The end of a stack shows as an error (no CFI for the entry
    // trampoline, or a read outside the copy): either way we keep what
    // came before it.
    (void)st.dw->dwfl_getthread_frames(st.dwfl, st.pid, on_frame, &sink);
    st.current = nullptr;
    if (pcs->size() > first) {
      if (sink.shape_ok && pcs->size() < max_frames) {
        for (std::uintptr_t& slot : shape.offsets) slot -= s.rsp;  // addresses to offsets
        shape.pcs.assign(pcs->begin() + static_cast<std::ptrdiff_t>(first), pcs->end());
        st.shapes.insert_or_assign(key, std::move(shape));
      }
      return;
    }
  }
#endif
  unwind_with_frame_pointers(s, start, pcs, max_frames);
}

const std::string& symbolize_session::describe(std::uintptr_t pc)
    SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  symbolizer_state& st = *g_state;
  auto [it, inserted] = st.names.try_emplace(pc);
  if (inserted) {
#if SPINDLE_HAVE_LIBDW_HEADERS
    it->second = st.dwfl != nullptr ? describe_with_libdw(st, pc) : describe_with_dladdr(pc);
#else
    it->second = describe_with_dladdr(pc);
#endif
  }
  return it->second;
}

}  // namespace spindle::detail
