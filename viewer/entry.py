"""The `liif-viewer` console command: on Linux it first restarts itself with glibc's huge-page malloc when
that helps (`viewer.hugepages`; encoding gets about a third faster), before importing anything heavy, then
runs `viewer.cli.main`; a one-shot command keeps freed memory in its heap (`viewer.heap`), a render, an
export or the window imports torch without the parts they do not need at once
(`viewer.startup.defer_unused_torch_modules`), and a render or export that succeeded ends without the
interpreter's teardown (`exit_at_once`)."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Sequence

from viewer.heap import keep_heap, one_shot_command
from viewer.hugepages import reexec_with_hugepages, viewer_job
from viewer.startup import defer_unused_torch_modules


def main() -> None:
    """Entry point of the `liif-viewer` script."""
    reexec_with_hugepages()
    if one_shot_command(sys.argv[1:]):
        keep_heap()
    if ends_with_its_file(sys.argv[1:]) or viewer_job(sys.argv[1:]):
        # The window too: its render thread imports torch 0.3 s sooner. The GUI thread never uses torch,
        # so a first use of a deferred part (which loads them all) lands on a render or export thread.
        defer_unused_torch_modules()
    from viewer.cli import main as cli_main

    try:
        code = cli_main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`liif-viewer models | head`): stop quietly, as other command-line tools
        # do, instead of a traceback. Python's own flush at exit would fail again, so point stdout at
        # /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, what a shell reports for a command killed by a broken pipe
    if code == 0 and ends_with_its_file(sys.argv[1:]):
        exit_at_once(code)
    sys.exit(code)


def ends_with_its_file(args: Sequence[str]) -> bool:
    """Whether `args` run a command whose whole result is the file it wrote and closed: `render`, `export`."""
    return bool(args) and args[0] in ("render", "export")


def exit_at_once(code: int) -> None:
    """End the process now: the exit handlers run (temporary files, logging), output is flushed, but the
    interpreter's teardown of every module and of torch is skipped. That teardown took 0.12 s after a x8
    `render` on the 2-core development machine, against 0.03 to 0.04 s this way (2 runs each)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
