"""``python -m descentlab``."""

from .cli import main

main()
