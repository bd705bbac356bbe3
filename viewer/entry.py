"""The `liif-viewer` console command: on Linux it first restarts itself with glibc's huge-page malloc when
that helps (`viewer.hugepages`; encoding gets about a third faster), before importing anything heavy, then
runs `viewer.cli.main`."""

from __future__ import annotations

import sys

from viewer.hugepages import reexec_with_hugepages


def main() -> None:
    """Entry point of the `liif-viewer` script."""
    reexec_with_hugepages()
    from viewer.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
