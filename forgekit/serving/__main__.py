"""``python -m forgekit.serving [FLAGS]``: the same as ``forgekit serve [FLAGS]``."""

import sys

from forgekit.serving.server import main

sys.exit(main())
