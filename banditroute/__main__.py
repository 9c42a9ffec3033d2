"""`python -m banditroute`: the same command as `banditroute`."""

import sys

from banditroute.cli import main

sys.exit(main())
