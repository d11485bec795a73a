"""``python -m jaxclust`` runs the ``jaxclust`` command."""

import sys

from jaxclust.cli import main

if __name__ == "__main__":
    sys.exit(main())
