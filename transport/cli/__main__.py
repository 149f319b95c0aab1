"""``python -m transport.cli``."""

import sys

from transport.cli import main

sys.exit(main())
