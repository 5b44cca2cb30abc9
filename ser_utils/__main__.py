"""``python -m ser_utils``: see :mod:`ser_utils.cli`."""

import sys

from .cli import main

sys.exit(main())
