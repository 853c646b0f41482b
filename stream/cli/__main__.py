"""`python -m stream.cli`: the `ccstream` command."""

import sys

from stream.cli.main import main

sys.exit(main())
