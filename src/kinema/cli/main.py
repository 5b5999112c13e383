"""``kinema``: the command line. Commands import the library lazily so ``--help`` is instant."""

from __future__ import annotations

from typing import Annotated

import typer

from kinema.cli import (
    asset_commands,
    export_commands,
    find_commands,
    keys_commands,
    lora_commands,
    media_commands,
    pose_commands,
    project_commands,
    propagate_commands,
    restore_commands,
    restyle_commands,
    retime_commands,
    serve_commands,
    stylize_commands,
    t2v_commands,
    tv_commands,
    vision_commands,
)

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
vision_commands.register(app)
find_commands.register(app)
pose_commands.register(app)
restore_commands.register(app)
asset_commands.register(app)
restyle_commands.register(app)
propagate_commands.register(app)
keys_commands.register(app)
stylize_commands.register(app)
tv_commands.register(app)
lora_commands.register(app)
retime_commands.register(app)
t2v_commands.register(app)
serve_commands.register(app)


def _reflow(text: str) -> str:
    """``text`` with the line breaks inside each paragraph made spaces, so the terminal wraps
    it (typer keeps a docstring's line breaks); indented lines and list items keep theirs."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        joins = out and out[-1] and line.strip() and not line.startswith((" ", "- ", "* "))
        if joins:
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out)


def _reflow_help(group: typer.Typer) -> None:
    """Every command's help from its docstring, reflowed (see :func:`_reflow`)."""
    import inspect

    for info in group.registered_commands:
        if info.help is None and info.callback is not None:
            info.help = _reflow(inspect.getdoc(info.callback) or "")
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_help(sub.typer_instance)


_reflow_help(app)


def _version(value: bool) -> None:
    if value:
        from kinema import __version__

        typer.echo(f"kinema {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress notes.")] = False,
) -> None:
    """kinema: an open-source AI video editor for artists."""
    import os

    from kinema.cli.console import setup_logging

    setup_logging(verbose)
    if ctx.invoked_subcommand != "models":  # downloads keep their progress bars
        # Loading weights is quick; transformers' bars and notices would bury our output.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def run() -> None:
    """Console-script entry point: wrong arguments get one ``error:`` line and exit code 2."""
    import sys

    from kinema.cli.console import stop_on_sigterm

    stop_on_sigterm()
    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError, which typer vendors
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx else "kinema --help"
        _usage_error(f"{exc.format_message()} (see {where})")  # type: ignore[attr-defined]
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(message: str) -> None:
    import sys

    from rich.markup import escape

    from kinema.cli.console import err

    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    sys.exit(2)
