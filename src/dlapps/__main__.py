"""``python -m dlapps`` (and ``torchrun -m dlapps``) run the command line."""

from dlapps.cli import main

main()
