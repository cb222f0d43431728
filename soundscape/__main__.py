"""``python -m soundscape`` runs the command line."""

from soundscape.cli import main

main()
