# gdb commands for Spindle's fibers, on a live process or a core file.
#
#   info fibers         every fiber: id, name, state, what it waits on,
#                       the worker it last ran on, where it resumes
#   fiber bt N [ARGS]   fiber N's backtrace (ARGS go to `bt`: full, -5...)
#   fiber N             select fiber N: `bt`, `frame`, `up`, `info locals`
#                       then show its stack, until `fiber none` (or the
#                       program runs again)
#   fiber               say which fiber is selected
#   fiber none          go back to the threads' own stacks
#
# Loading. In gdb (or in ~/.gdbinit), with the installed script:
#
#   source /usr/local/share/spindle/gdb/spindle.py
#
# (the prefix the package was installed to, then share/spindle/gdb/). Or
# let gdb load it with the program, through auto-loading: copy or link it
# next to the program as PROGRAM-gdb.py (gdb looks for "$objfile-gdb.py"),
# and allow that directory once, in ~/.gdbinit:
#
#   add-auto-load-safe-path /path/to/the/program's/directory
#
# The program needs debug info (-g; RelWithDebInfo and Debug have it): the
# script reads Spindle's own structures by their names.
#
# How fibers are found. Every fiber stack ever mapped is listed in
# spindle::detail::g_stack_list (fiber/detail/stack.cpp; stacks are never
# unmapped), and the 64 bytes at the top of each stack are its
# stack_header, whose first word (`live`) points to the control block of
# the fiber that lives there, or is null (fiber/detail/control_block.h).
#
# How a fiber's stack is shown. A fiber that is not running was switched
# out by Boost.Context's jump_fcontext, which saved its registers at
# control_block::ctx_ (x86-64 System V; the same layout
# fiber/detail/inspect.cpp reads):
#   +0x00 MXCSR and x87 control word, +0x08 r12, +0x10 r13, +0x18 r14,
#   +0x20 r15, +0x28 rbx, +0x30 rbp, +0x38 the address it resumes at;
#   its rsp once resumed is ctx_ + 0x40.
# Spindle enters jump_fcontext from inline assembly
# (fiber/detail/inline_switch.h) that first moves rsp 128 bytes down, past
# the red zone, and moves it back right where it resumes: that
# instruction (lea 0x80(%rsp),%rsp) at the resume address says to add 128.
# A core file's registers cannot be written, so instead of switching the
# thread's registers a gdb unwinder (registered globally, active only while
# a fiber is selected) claims the innermost frame of the thread that was
# selected and gives the fiber's saved registers as its caller's: frame #1
# and up are then the fiber's, and a frame filter hides the thread's own
# frame(s) from `bt`. This is the approach of folly's
# folly/fibers/scripts/gdb.py and of tarantool's gdb script.
#
# A running fiber's registers are its thread's: `info fibers` names the
# thread (found from spindle::detail::tls_current_fiber of each thread),
# and `thread apply N bt` shows its stack.

import gdb
import gdb.unwinder

# The frame jump_fcontext saves (see above), in bytes from ctx_.
_CTX_R12 = 0x08
_CTX_R13 = 0x10
_CTX_R14 = 0x18
_CTX_R15 = 0x20
_CTX_RBX = 0x28
_CTX_RBP = 0x30
_CTX_RIP = 0x38
_CTX_SIZE = 0x40  # rsp after the resume is ctx_ + this

# fiber/detail/inline_switch.h: the switch lowers rsp by this much (the
# x86-64 red zone) before jumping, and the first instruction at its resume
# address, lea 0x80(%rsp),%rsp, undoes it.
_RED_ZONE = 128
_LEA_RSP_PLUS_128 = bytes.fromhex("488da42480000000")

_STACK_HEADER_SIZE = 64  # stack_header_size in control_block.h

# wait_reason_name() in fiber/detail/control_block.cpp, by enumerator.
_REASON_WORDS = {
    "none": "unknown",
    "once": "call_once",
    "channel_send": "channel send",
    "channel_recv": "channel recv",
    "fd_read": "read",
    "fd_write": "write",
    "blocking_call": "blocking call",
    "blocking_queue": "blocking pool queue",
    "fd_close": "close",
}

# What control_block::wait_arg_ means for a reason (sched/park.h's
# note_wait(): a descriptor, a fiber id, a count of channels).
_ARG_LABELS = {
    "fd_read": "fd",
    "fd_write": "fd",
    "fd_close": "fd",
    "join": "fiber",
    "select": "channels",
}


def _type(name):
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise gdb.GdbError(
            "spindle: type %s not found: is this a Spindle program with debug info?" % name
        )


def _atomic(value):
    """The value inside a libstdc++ std::atomic<T> (or T itself)."""
    for path in (("_M_i",), ("_M_b", "_M_p"), ("_M_base", "_M_i")):
        v = value
        try:
            for field in path:
                v = v[field]
            return v
        except gdb.error:
            continue
    # Some other layout: the T the atomic was instantiated with is its
    # first (and only) bytes.
    try:
        return value.address.cast(value.type.template_argument(0).pointer()).dereference()
    except (gdb.error, RuntimeError):
        return value


def _enumerator(value):
    """An enum value's enumerator name without its scope ("parked")."""
    n = int(value)
    for field in value.type.strip_typedefs().fields():
        if field.enumval == n:
            return field.name.split("::")[-1]
    return str(n)


def _string(value):
    """A std::string's characters."""
    try:
        length = int(value["_M_string_length"])
        if length == 0:
            return ""
        return value["_M_dataplus"]["_M_p"].string(length=length, errors="replace")
    except gdb.error:
        return value.format_string(raw=False).strip('"')


class _CxxLanguage:
    """Evaluates in C++ whatever language the selected frame is in (a
    stop in libc is in C, where spindle::... does not parse)."""

    def __enter__(self):
        self.saved = gdb.parameter("language")
        if self.saved != "c++":
            gdb.execute("set language c++", to_string=True)
        return self

    def __exit__(self, *exc):
        if self.saved != "c++":
            gdb.execute("set language %s" % self.saved, to_string=True)
        return False


def _eval(expression):
    with _CxxLanguage():
        return gdb.parse_and_eval(expression)


def _read_word(inferior, address):
    return int.from_bytes(bytes(inferior.read_memory(address, 8)), "little")


def _symbolize(pc):
    """'function' (or '??') for a code address: the function compiled
    there, not the functions inlined into it (the switch itself is)."""
    try:
        block = gdb.block_for_pc(pc)
        function = None
        while block is not None:
            if block.function is not None:
                function = block.function
            block = block.superblock
        if function is not None:
            return function.print_name
    except (RuntimeError, gdb.error):
        pass
    try:
        text = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
        if not text.startswith("No symbol"):
            return text.split(" in section")[0]
    except gdb.error:
        pass
    return "??"


_MAX_NAME = 60  # longer function names lose their template arguments


def _shorten(name):
    """A function name without its parameter list and, if still long,
    with its template arguments elided: 'spindle::channel<...>::transfer<...>'."""
    depth = 0
    for i in range(len(name) - 1, -1, -1):  # the parameter list ends the name
        if name[i] == ")":
            depth += 1
        elif name[i] == "(":
            depth -= 1
            if depth == 0:
                name = name[:i]
                break
    if len(name) <= _MAX_NAME:
        return name
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            if depth == 0:
                out.append("<...>")
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _where(pc):
    """'0xADDR in function' for a resume address (the line would be the
    switch's own, inlined there)."""
    return "0x%x in %s" % (pc, _shorten(_symbolize(pc)))


class _Fields:
    """Reads members of a struct at an address by their offsets. Not
    through Value.dereference() of a control_block*: the block is
    polymorphic, and gdb would look for the RTTI of each fiber_record<...>
    (and warn where it finds none)."""

    def __init__(self, type_name):
        self.type = _type(type_name)
        self.fields = {f.name: f for f in self.type.fields() if f.name}

    def get(self, address, name):
        field = self.fields[name]
        return gdb.Value(address + field.bitpos // 8).cast(field.type.pointer()).dereference()


_control_block = None
_worker = None


class Fiber:
    """One fiber, read from its control block."""

    def __init__(self, address):
        global _control_block, _worker
        if _control_block is None:
            _control_block = _Fields("spindle::detail::control_block")
        c = lambda name: _control_block.get(address, name)
        self.address = address
        self.id = int(c("id_"))
        self.name = _string(c("name_"))
        self.state = _enumerator(_atomic(c("state_")))
        self.reason = _enumerator(_atomic(c("wait_reason_")))
        self.wait_object = int(_atomic(c("wait_object_")))
        self.wait_arg = int(_atomic(c("wait_arg_")))
        self.ctx = int(c("ctx_"))
        self.worker = None
        try:
            worker = int(c("worker_"))
            if worker != 0:
                if _worker is None:
                    _worker = _Fields("spindle::detail::worker")
                self.worker = int(_worker.get(worker, "index_"))
        except (gdb.error, gdb.GdbError, KeyError):
            pass
        self.thread = None  # the gdb thread running it, if found

    def switched_out(self):
        """Whether its registers are saved at ctx_ (not on a thread)."""
        return self.state in ("runnable", "parked") and self.ctx != 0

    def wait_text(self):
        if self.state != "parked":
            return "-"
        words = _REASON_WORDS.get(self.reason, self.reason.replace("_", " "))
        text = words
        if self.wait_object:
            text += " 0x%x" % self.wait_object
        label = _ARG_LABELS.get(self.reason)
        if label is not None:
            text += " %s=%d" % (label, self.wait_arg)
        elif self.reason == "shared_mutex":
            text += " (reader)" if self.wait_arg else " (writer)"
        return text

    def state_text(self):
        if self.state in ("running", "parking", "notified"):
            where = "thread %d" % self.thread if self.thread is not None else "its thread"
            return "%s (see %s)" % (self.state, where)
        return self.state

    def registers(self):
        """The registers it resumes with: {name: value}."""
        inferior = gdb.selected_inferior()
        ctx = self.ctx
        regs = {
            "r12": _read_word(inferior, ctx + _CTX_R12),
            "r13": _read_word(inferior, ctx + _CTX_R13),
            "r14": _read_word(inferior, ctx + _CTX_R14),
            "r15": _read_word(inferior, ctx + _CTX_R15),
            "rbx": _read_word(inferior, ctx + _CTX_RBX),
            "rbp": _read_word(inferior, ctx + _CTX_RBP),
            "rip": _read_word(inferior, ctx + _CTX_RIP),
            "rsp": ctx + _CTX_SIZE,
        }
        try:
            if bytes(inferior.read_memory(regs["rip"], len(_LEA_RSP_PLUS_128))) == _LEA_RSP_PLUS_128:
                regs["rsp"] += _RED_ZONE
        except gdb.MemoryError:
            pass
        return regs

    def resume_text(self):
        if not self.switched_out():
            return "-"
        try:
            return _where(self.registers()["rip"])
        except gdb.MemoryError:
            return "0x%x: <unreadable>" % self.ctx


def _stacks():
    """(base, mapping_size) of every stack in g_stack_list."""
    try:
        vec = _eval("spindle::detail::g_stack_list")
    except gdb.error:
        raise gdb.GdbError(
            "spindle: spindle::detail::g_stack_list not found: is this a Spindle program "
            "with debug info?"
        )
    if int(vec) == 0:
        return []  # no fiber was ever spawned
    impl = vec.dereference()["_M_impl"]
    start, finish = int(impl["_M_start"]), int(impl["_M_finish"])
    stack_type = _type("spindle::detail::stack")
    offsets = {f.name: f.bitpos // 8 for f in stack_type.fields() if not f.artificial}
    size = stack_type.sizeof
    count = (finish - start) // size
    if count == 0:
        return []
    raw = bytes(gdb.selected_inferior().read_memory(start, count * size))
    result = []
    for i in range(count):
        rec = raw[i * size : (i + 1) * size]
        word = lambda name: int.from_bytes(rec[offsets[name] : offsets[name] + 8], "little")
        result.append((word("base"), word("mapping_size")))
    return result


def _running_fibers():
    """{control block address: gdb thread number} from each thread's
    spindle::detail::tls_current_fiber (best effort: a core may not let
    gdb read thread-local storage)."""
    result = {}
    selected = gdb.selected_thread()
    if selected is None:
        return result
    try:
        frame = gdb.selected_frame()
    except gdb.error:
        frame = None
    try:
        for thread in gdb.selected_inferior().threads():
            try:
                thread.switch()
                cb = int(_eval("spindle::detail::tls_current_fiber"))
                if cb != 0:
                    result[cb] = thread.num
            except gdb.error:
                continue
    finally:
        selected.switch()
        if frame is not None:
            try:
                frame.select()
            except gdb.error:
                pass
    return result


def fibers():
    """Every live fiber of the inferior, by id."""
    inferior = gdb.selected_inferior()
    if inferior.pid == 0 and not inferior.threads():
        raise gdb.GdbError("spindle: no process or core file")
    found = []
    for base, mapping_size in _stacks():
        try:
            live = _read_word(inferior, base + mapping_size - _STACK_HEADER_SIZE)
        except gdb.MemoryError:
            continue  # a pooled stack whose pages are gone (not in the core)
        if live == 0:
            continue
        try:
            found.append(Fiber(live))
        except (gdb.MemoryError, gdb.error):
            continue
    running = _running_fibers()
    for f in found:
        f.thread = running.get(f.address)
    found.sort(key=lambda f: f.id)
    return found


def find_fiber(arg):
    try:
        wanted = int(_eval(arg))
    except (gdb.error, ValueError):
        raise gdb.GdbError("spindle: '%s' is not a fiber id (a number; see 'info fibers')" % arg)
    for f in fibers():
        if f.id == wanted:
            return f
    raise gdb.GdbError("spindle: %d is not a fiber of this program (see 'info fibers')" % wanted)


# ---- Showing a switched-out fiber's stack ----


class _Selection:
    """The fiber whose registers the unwinder gives, and the thread frame
    it replaces the caller of."""

    def __init__(self, fiber, thread, sp, pc):
        self.fiber = fiber
        self.ptid = thread.ptid
        self.thread_num = thread.num
        self.sp = sp
        self.pc = pc
        self.regs = fiber.registers()
        self.claimed_level = None  # the level of the frame it claimed


_selection = None


class _FrameId:
    # gdb wants gdb.Value attributes (gdb.unwinder.FrameId from gdb 14).
    def __init__(self, sp, pc):
        self.sp = gdb.Value(sp)
        self.pc = gdb.Value(pc)


class FiberUnwinder(gdb.unwinder.Unwinder):
    """Claims the selected thread's innermost (non-inline) frame while a
    fiber is selected, and gives the fiber's saved registers as those of
    its caller: the frames above it are then the fiber's."""

    def __init__(self):
        super().__init__("spindle-fiber")

    def __call__(self, pending_frame):
        sel = _selection
        if sel is None:
            return None
        thread = gdb.selected_thread()
        if thread is None or thread.ptid != sel.ptid:
            return None
        sp = int(pending_frame.read_register("rsp"))
        pc = int(pending_frame.read_register("rip"))
        if sp != sel.sp or pc != sel.pc:
            return None
        # The thread's stack and the fiber's are unrelated: make the claimed
        # frame look inner to the fiber's, or gdb would stop at "previous
        # frame inner to this frame (corrupt stack?)".
        frame_sp = min(sp, sel.regs["rsp"] - 16)
        info = pending_frame.create_unwind_info(_FrameId(frame_sp, pc))
        for name, value in sel.regs.items():
            reg_type = pending_frame.read_register(name).type
            info.add_saved_register(name, gdb.Value(value).cast(reg_type))
        try:
            sel.claimed_level = pending_frame.level()
        except AttributeError:
            sel.claimed_level = 0
        return info


class FiberFrameFilter:
    """Hides the thread's own frame(s) below a selected fiber's."""

    def __init__(self):
        self.name = "spindle-fiber"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frame_iter):
        if _selection is None:
            return frame_iter
        return self._skip_thread_frames(frame_iter)

    @staticmethod
    def _skip_thread_frames(frame_iter):
        sel = _selection
        for decorator in frame_iter:
            frame = decorator.inferior_frame()
            if sel is not None and sel.claimed_level is not None:
                if frame.level() <= sel.claimed_level:
                    continue
            yield decorator
            # A fiber's first frame returns to make_fcontext's trampoline,
            # and what lies above that is not a frame.
            if frame.name() == "spindle::detail::(anonymous namespace)::fiber_entry":
                break


def _select(fiber):
    """Shows `fiber`'s stack in place of the selected thread's."""
    global _selection
    if not fiber.switched_out():
        if fiber.thread is not None:
            hint = "its thread's stack: 'thread apply %d bt'" % fiber.thread
        else:
            hint = "its thread's stack: find it with 'thread apply all bt'"
        raise gdb.GdbError(
            "spindle: fiber %d is %s, so its registers are its thread's; see %s"
            % (fiber.id, fiber.state, hint)
        )
    thread = gdb.selected_thread()
    if thread is None:
        raise gdb.GdbError("spindle: no thread selected")
    _clear()
    frame = gdb.newest_frame()
    sp = int(frame.read_register("rsp"))
    pc = int(frame.read_register("rip"))
    _selection = _Selection(fiber, thread, sp, pc)
    gdb.invalidate_cached_frames()


def _clear():
    global _selection
    if _selection is not None:
        _selection = None
        gdb.invalidate_cached_frames()


def _on_run(_event):
    _clear()  # the thread's registers change: the selection means nothing


def _describe(fiber):
    text = "fiber %d" % fiber.id
    if fiber.name:
        text += ' "%s"' % fiber.name
    wait = fiber.wait_text()
    text += " (%s%s)" % (fiber.state, "" if wait == "-" else ": " + wait)
    return text


# ---- Commands ----


class InfoFibers(gdb.Command):
    """List Spindle's fibers: id, name, state, what it waits on, worker, resume point.

Usage: info fibers
A running fiber's registers are its thread's, named in its state.
The selected fiber (see 'fiber N') is marked with '*'."""

    def __init__(self):
        super().__init__("info fibers", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        found = fibers()
        if not found:
            print("No fibers.")
            return
        rows = [("", "Id", "Name", "State", "Worker", "Waits on", "Resumes at")]
        for f in found:
            mark = "*" if _selection is not None and _selection.fiber.id == f.id else ""
            worker = "-" if f.worker is None else str(f.worker)
            rows.append(
                (mark, str(f.id), f.name or '""', f.state_text(), worker, f.wait_text(),
                 f.resume_text())
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            cells = [r[i].ljust(widths[i]) for i in range(len(widths))] + [r[-1]]
            print("  ".join(cells).rstrip())


class FiberCommand(gdb.Command):
    """Select a fiber, so that bt, frame, up and info locals show its stack.

Usage: fiber N      select fiber N (a switched-out one: parked or runnable)
       fiber        say which fiber is selected
       fiber none   select none: the threads' own stacks again
The selection ends when the program runs again. While a fiber is selected,
its frames are numbered from #1 (frame #0 is the thread's own, hidden)."""

    def __init__(self):
        super().__init__("fiber", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            if _selection is None:
                print("No fiber selected (see 'info fibers', 'fiber N').")
            else:
                print("Selected %s, shown in place of thread %d's stack."
                      % (_describe(_selection.fiber), _selection.thread_num))
            return
        if arg == "none":
            _clear()
            return
        fiber = find_fiber(arg)
        _select(fiber)
        print("Selected %s; its frames start at #1. 'fiber none' to go back." % _describe(fiber))
        gdb.execute("frame 1", from_tty=from_tty)


class FiberBacktrace(gdb.Command):
    """Print the backtrace of a fiber.

Usage: fiber bt N [BT-ARGS]
BT-ARGS go to 'bt' (full, -N, ...). The fiber's frames start at #1.
A running fiber's stack is its thread's: use 'thread apply T bt'."""

    def __init__(self):
        super().__init__("fiber bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        parts = arg.split(None, 1)
        if not parts:
            raise gdb.GdbError("usage: fiber bt N [BT-ARGS]")
        fiber = find_fiber(parts[0])
        previous = _selection.fiber if _selection is not None else None
        _select(fiber)
        try:
            print("Fiber %s:" % _describe(fiber)[len("fiber "):])
            gdb.execute("bt " + (parts[1] if len(parts) > 1 else ""), from_tty=False)
        finally:
            _clear()
            if previous is not None:
                try:
                    _select(previous)
                except gdb.GdbError:
                    pass


def _register():
    gdb.unwinder.register_unwinder(None, FiberUnwinder(), replace=True)
    FiberFrameFilter()
    gdb.events.cont.connect(_on_run)
    gdb.events.exited.connect(_on_run)
    InfoFibers()
    FiberCommand()
    FiberBacktrace()


_register()
