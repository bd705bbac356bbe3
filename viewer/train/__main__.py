"""`python -m viewer.train`: the same as `liif-viewer train`."""

import sys

from viewer.train.trainer import main

sys.exit(main())
