"""``python -m hundi`` is the ``hundi`` command."""

from hundi.cli import main

main()
