"""``python -m trustbox`` runs the CLI (used by the sandbox to start its servers)."""

from trustbox.cli import main

main()
