"""`python -m seinject`: the `seinject` command line (see seinject.cli)."""

import sys

from .cli import main

sys.exit(main())
