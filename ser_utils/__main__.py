"""``python -m ser_utils``: the library's commands (:mod:`ser_utils.cli`) and the book's (:mod:`ser_utils.course.commands`).

This file is the program, not the library: the one place that joins the two layers.
"""

import sys

from .course.commands import main

if __name__ == "__main__":
    sys.exit(main())
