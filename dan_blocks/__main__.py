"""``python -m dan_blocks ...`` (what ``torchrun -m dan_blocks train ...`` runs)."""

import sys

from dan_blocks.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
