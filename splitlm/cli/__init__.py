"""Typer command-line apps: thin shells, one library call per command, heavy imports inside."""
