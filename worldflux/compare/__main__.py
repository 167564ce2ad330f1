"""``python -m worldflux.compare``."""

from worldflux.compare.app import main

main()
