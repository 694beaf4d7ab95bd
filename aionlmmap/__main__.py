"""``python -m aionlmmap``: the same as the ``aionlmmap`` command."""

import sys

from .cli import main

sys.exit(main())
