#!/usr/bin/env python3
"""The gdb script share/spindle/gdb/spindle.py, on a live process and on a
core file.

1. gdb runs gdb_fibers_program as its child (no ptrace attach needed) up
   to all_parked_now(), where every test fiber is parked; there it runs
   `info fibers` (the live mode) and writes a core with generate-core-file.
2. A second gdb loads the core with the script and runs `info fibers` and
   `fiber bt N` for each parked fiber, plus the two error cases.

Checks: every fiber is listed with its name, state and wait reason, the
running main fiber names its thread, each backtrace shows the fiber's
distinctive function, and the errors are clear. Exits 77 (ctest's skip)
where gdb, or gdb's Python, is missing.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys

SKIP = 77
GDB_TIMEOUT_S = 60

# name -> (state, wait words in `info fibers`, function its backtrace shows)
# The channel's send and recv record no wait reason yet ("unknown"); the
# test takes the words they will say once they do.
FIBERS = {
    "recv": ("parked", ("unknown", "channel recv"), "parked_on_channel_recv_here"),
    "select": ("parked", ("select",), "parked_in_select_here"),
    "mutex": ("parked", ("mutex",), "parked_on_mutex_here"),
    "sleep": ("parked", ("sleep",), "sleeping_here"),
    "join": ("parked", ("join",), "joining_here"),
}

failures = []


def check(condition, what, output=None):
    if condition:
        print("ok: " + what)
        return
    print("FAILED: " + what)
    if output is not None:
        print("---- gdb output ----\n" + output + "---- end ----")
    failures.append(what)


def run_gdb(gdb, args, cwd):
    cmd = [gdb, "-nx", "-batch"] + args
    print("$ " + " ".join(cmd), flush=True)
    # Its own process group, so that a timeout also ends the program that
    # gdb runs (a killed gdb would leave it running, detached).
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=GDB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        check(False, "gdb finished within %d s" % GDB_TIMEOUT_S, out)
    return out


def bt_commands(refs):
    """`fiber bt N` for each test fiber and the error cases, each output
    after a '==== name' line. refs: name -> the id, or an expression."""
    commands = []
    for name in FIBERS:
        commands += ["-ex", "echo ==== bt %s\\n" % name, "-ex", "fiber bt %s" % refs[name]]
    commands += ["-ex", "echo ==== bt main\\n", "-ex", "fiber bt %s" % refs["main"],
                 "-ex", "echo ==== bt none\\n", "-ex", "fiber bt 999999",
                 "-ex", "echo ==== select\\n", "-ex", "fiber %s" % refs["mutex"],
                 "-ex", "bt", "-ex", "fiber none", "-ex", "echo ==== after\\n", "-ex", "bt 1",
                 "-ex", "echo ==== end\\n"]
    return commands


def check_backtraces(output, ids, mode):
    sections = dict(re.findall(r"^==== ([\w ]+)\n(.*?)(?=^==== |\Z)", output, re.M | re.S))
    for name, (_, _, function) in FIBERS.items():
        bt = sections.get("bt " + name, "")
        check(re.search(r"^#1 .*jump_inline", bt, re.M) is not None,
              "%s: fiber bt of gdb-%s starts at its switch (#1)" % (mode, name), output)
        check(re.search(r"^#\d+ .*\b%s\b" % function, bt, re.M) is not None,
              "%s: fiber bt of gdb-%s shows %s()" % (mode, name, function), output)
        check(re.search(r"^#\d+ .*fiber_entry", bt, re.M) is not None,
              "%s: fiber bt of gdb-%s reaches the fiber's entry" % (mode, name), output)
        check("all_parked_now" not in bt,
              "%s: fiber bt of gdb-%s hides the thread's own frame" % (mode, name), output)
    check(re.search(r"fiber %d is running.*thread apply \d+ bt" % ids["main"],
                    sections.get("bt main", "")) is not None,
          "%s: fiber bt of the running main fiber points to 'thread apply'" % mode, output)
    check("999999 is not a fiber" in sections.get("bt none", ""),
          "%s: fiber bt of a number that is no fiber says so" % mode, output)
    check("parked_on_mutex_here" in sections.get("select", ""),
          "%s: 'fiber N' then 'bt' shows the fiber's stack" % mode, output)
    check(re.search(r"^#0 .*all_parked_now", sections.get("after", ""), re.M) is not None,
          "%s: 'fiber none' gives the thread its own stack back" % mode, output)


def fiber_rows(output):
    """{name: row text} from `info fibers`, keyed by the name column."""
    rows = {}
    for line in output.splitlines():
        m = re.match(r"^[ *]\s*(\d+)\s+(\S+)\s+(.*)$", line)
        if m:
            rows[m.group(2)] = (int(m.group(1)), m.group(3))
    return rows


def check_listing(output, ids, mode):
    rows = fiber_rows(output)
    for name, (state, reasons, _) in FIBERS.items():
        row = rows.get("gdb-" + name)
        if row is None:
            check(False, "%s: fiber gdb-%s is listed" % (mode, name), output)
            continue
        fid, rest = row
        check(fid == ids[name], "%s: gdb-%s has id %d" % (mode, name, ids[name]), output)
        check(rest.split()[0] == state, "%s: gdb-%s is %s" % (mode, name, state), output)
        check(any(re.search(r"\s%s(\s|$)" % re.escape(r), rest) for r in reasons),
              "%s: gdb-%s waits on %s" % (mode, name, " or ".join(reasons)), output)
        check(" in " in rest, "%s: gdb-%s has a symbolized resume address" % (mode, name), output)
    join_row = rows.get("gdb-join")
    if join_row is not None:
        check("fiber=%d" % ids["recv"] in join_row[1],
              "%s: gdb-join names the fiber it joins" % mode, output)
    select_row = rows.get("gdb-select")
    if select_row is not None:
        check("channels=2" in select_row[1], "%s: gdb-select counts its channels" % mode, output)
    main_row = rows.get("main")
    check(main_row is not None and re.search(r"running \(see thread \d+\)", main_row[1]),
          "%s: the main fiber is running and names its thread" % mode, output)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--program", required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--gdb", default=os.environ.get("GDB", "gdb"))
    parser.add_argument("--sanitizer", default="")
    args = parser.parse_args()
    args.program = os.path.abspath(args.program)
    args.script = os.path.abspath(args.script)

    gdb = shutil.which(args.gdb)
    if gdb is None:
        print("SKIPPED: gdb is not installed (scripts/test.sh installs it)")
        return SKIP
    probe = subprocess.run([gdb, "-nx", "-batch", "-ex", "python print('py' + 'ok')"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if "pyok" not in probe.stdout:
        print("SKIPPED: this gdb has no Python support:\n" + probe.stdout)
        return SKIP

    os.makedirs(args.work_dir, exist_ok=True)
    core = os.path.join(args.work_dir, "gdb_fibers.core")
    if os.path.exists(core):
        os.remove(core)
    source = ["-ex", "source " + args.script]

    # ---- 1. The live process ----
    # The program prints the ids only once it runs, so the commands name
    # them by the globals it keeps them in (fiber bt takes an expression).
    # A sanitizer's shadow memory is tens of GiB of mappings that
    # generate-core-file would write out: the core half runs only in plain
    # builds.
    globals_ = {name: "gdb_fiber_ids.%s" % name for name in list(FIBERS) + ["main"]}
    dump = [] if args.sanitizer else ["-ex", "generate-core-file " + core]
    live = run_gdb(gdb, [
        "-ex", "set breakpoint pending on",
        "-ex", "break all_parked_now",
        "-ex", "run",
        ] + source + ["-ex", "info fibers"] + bt_commands(globals_) + dump + [
        "-ex", "kill",
        "--args", args.program], args.work_dir)
    ids = {m.group(1): int(m.group(2))
           for m in re.finditer(r"^gdb_fibers_program: (\w+)=(\d+)$", live, re.M)}
    if not all(name in ids for name in list(FIBERS) + ["main"]):
        check(False, "the program ran to all_parked_now() under gdb", live)
        return 1
    check("all_parked_now" in live, "gdb stopped at all_parked_now()", live)
    check_listing(live.split("==== ")[0], ids, "live")
    check_backtraces(live, ids, "live")

    # ---- 2. The core file ----
    if args.sanitizer:
        print("core file half skipped in the %s sanitizer build: generate-core-file would "
              "write the sanitizer's shadow memory (tens of GiB)" % args.sanitizer)
    elif not os.path.exists(core):
        check(False, "gdb wrote a core file", live)
    else:
        dead = run_gdb(gdb, source + ["-ex", "info fibers"] + bt_commands(ids) +
                       [args.program, core], args.work_dir)
        check_listing(dead.split("==== ")[0], ids, "core")
        check_backtraces(dead, ids, "core")

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    if os.path.exists(core):
        os.remove(core)  # kept only when a check failed
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
