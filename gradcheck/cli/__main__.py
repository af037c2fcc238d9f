"""python -m gradcheck.cli: the same as the gradcheck command (and python -m gradcheck)."""

import sys

from gradcheck.cli import main

sys.exit(main())
