"""Run a command; fail if a process it started outlives it.  ``python tests/leftovers.py CMD ARGS...``

Used by ``make stress`` around pytest: a batch worker or ``vidsr batch`` left running by a test is a
bug (issue 10), even when every test passed.  This process becomes a child subreaper (Linux), so
whatever the command leaves behind, however deep and in whatever session, is re-parented here
instead of to init: once the command has exited, every child still alive here outlived it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
# Seconds for orphans on their way out to go: a batch worker whose coordinator died while it was still
# importing (before PR_SET_PDEATHSIG) only notices when it gets there, which on a starved machine takes
# many seconds.  A bound for a hang, not a timing assumption: one still here then never leaves.
_GRACE = 120.0


def _children() -> dict[int, str]:
    """Live children of this process (zombies are reaped), with their command lines."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] not in "ZX":
                cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(stat.parent.name)] = cmd.strip()
    return found


def main(command: list[str]) -> int:
    if not command:
        raise SystemExit(__doc__)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("leftovers.py needs Linux (PR_SET_CHILD_SUBREAPER)")
    code = subprocess.call(command)
    ended = time.monotonic()
    while (left := _children()) and time.monotonic() < ended + _GRACE:
        time.sleep(0.1)
    if not left:
        if time.monotonic() - ended > 1:
            print(f"leftovers.py: processes outlived {command[0]} by {time.monotonic() - ended:.0f} s", file=sys.stderr)
        return code
    print(f"{len(left)} processes outlived {command[0]}:", file=sys.stderr)
    for pid, cmd in left.items():
        print(f"  {pid} {cmd[:200]}", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # ours: started by the command this script ran
    return code or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
