"""``python -m omniroute.adapters.cli``: the ``omniroute`` command."""

import sys

from .main import main

sys.exit(main())
