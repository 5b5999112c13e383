"""The ``kinema`` command line (typer + rich)."""
