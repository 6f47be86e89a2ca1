"""The Typer command-line interface; the only place that renders."""
