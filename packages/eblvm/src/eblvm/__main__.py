"""``python -m eblvm``: the same as the ``eblvm`` command."""

import sys

from eblvm.cli import main

sys.exit(main())
