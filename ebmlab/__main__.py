"""``python -m ebmlab …`` (and ``torchrun … -m ebmlab …``): the ``ebmlab`` command line."""

import sys

from .cli import main

sys.exit(main())
