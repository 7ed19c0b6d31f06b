"""``python -m crewai_rust``: see :mod:`crewai_rust._cli`."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
