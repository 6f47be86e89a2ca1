"""``python -m shufflenet_nas`` runs the CLI."""

from shufflenet_nas.cli.app import main

main()
