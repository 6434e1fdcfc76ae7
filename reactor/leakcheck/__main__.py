"""``python -m reactor.leakcheck``: the same as ``reactor leakcheck``."""

import sys

from .command import main

sys.exit(main())
