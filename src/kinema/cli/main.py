"""``kinema``: the command line. Commands import the library lazily so ``--help`` is instant."""

from __future__ import annotations

from typing import Annotated

import typer

from kinema.cli import export_commands, media_commands, project_commands

app = typer.Typer(
    name="kinema",
    help="kinema: an open-source AI video editor for artists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
media_commands.register(app)
project_commands.register(app)
export_commands.register(app)


def _version(value: bool) -> None:
    if value:
        from kinema import __version__

        typer.echo(f"kinema {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress notes.")] = False,
) -> None:
    """kinema: an open-source AI video editor for artists."""
    from kinema.cli.console import setup_logging

    setup_logging(verbose)


def run() -> None:
    """Console-script entry point."""
    app()

