"""Allow ``python -m skcollapse``."""

import sys

from skcollapse.cli import main

if __name__ == "__main__":
    sys.exit(main())
