"""`python -m wsgw` is the same as the `wsgw` command."""

import sys

from wsgw.cli import main

sys.exit(main())
