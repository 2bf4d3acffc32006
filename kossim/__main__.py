"""``python -m kossim``: the same command line as the ``kossim`` script."""

from __future__ import annotations

from kossim.cli import main

if __name__ == "__main__":
    main()
