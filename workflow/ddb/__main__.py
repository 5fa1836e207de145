"""``python -m ddb ...``: the same as the ``ddb`` console script."""

import sys

from .cli import main

sys.exit(main())
