"""The `liif-viewer` console command: on Linux it first restarts itself with glibc's huge-page malloc when
that helps (`viewer.hugepages`; encoding gets about a third faster), before importing anything heavy, then
runs `viewer.cli.main`; a one-shot command keeps freed memory in its heap (`viewer.heap`)."""

from __future__ import annotations

import os
import sys

from viewer.heap import keep_heap, one_shot_command
from viewer.hugepages import reexec_with_hugepages


def main() -> None:
    """Entry point of the `liif-viewer` script."""
    reexec_with_hugepages()
    if one_shot_command(sys.argv[1:]):
        keep_heap()
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
    sys.exit(code)


if __name__ == "__main__":
    main()
