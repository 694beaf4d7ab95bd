"""``python -m aionlmmap``: the same as the ``aionlmmap`` command."""

import sys

from ._entry import main

sys.exit(main())
