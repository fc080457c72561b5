"""`python -m moa`: the `moa` command where no console script was installed (a `pip install --target`)."""
import sys

from moa.cli import main

sys.exit(main())
