"""`python -m dialer`: the `dialer` command."""

import sys

from dialer.cli import main

if __name__ == "__main__":
    sys.exit(main())
