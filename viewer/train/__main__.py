"""`python -m viewer.train`: the same as `liif-viewer train`."""

import sys

from viewer.train.trainer import main

if __name__ == "__main__":
    sys.exit(main())
