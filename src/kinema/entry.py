"""The ``kinema`` program: the command line, with the editor's command added.

The CLI and the editor are separate surfaces that never import each other; this module is
where both are put together (the composition layer, above both), and so it holds ``kinema edit``,
the command that starts the editor with the CLI's error handling.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kinema.models.backends import describe


def edit(
    path: Annotated[Path | None, typer.Argument(
        help="A video (its project is made beside it) or a project folder; default: the last one.",
        show_default=False)] = None,
    screenshot: Annotated[Path | None, typer.Option(
        "--screenshot", help="Draw, run --do, save the whole window as PNG and exit.")] = None,
    do: Annotated[str | None, typer.Option(
        "--do", help='Editor commands separated by ";", e.g. "seek 10; click 320 240; propagate '
                     'forward 10; pose on; export matte m.mov". Generate and Restyle panels: '
                     '"generate PROMPT; place X Y [SCALE]; restyle key [N]; restyle control KIND '
                     'WEIGHT; restyle run [PROMPT]". Only "save" saves; "recover" or "discard" '
                     'answer for unsaved edits a killed session left.')] = None,
    backend: Annotated[str, typer.Option(
        "--backend", "-b", help=f"One of: {describe('track')}.")] = "classic",
    model: Annotated[str | None, typer.Option("--model", help="SAM 2 folder or model name.")] = None,
    sdxl: Annotated[str | None, typer.Option(
        "--sdxl", help="SDXL model name or folder for the Generate and Restyle panels "
                       "(default: sdxl-base to generate, sdxl-inpaint to restyle).")] = None,
    controlnet: Annotated[list[str] | None, typer.Option(
        "--controlnet", help="KIND=NAME|DIR: the Restyle panel's ControlNet of a condition "
                             "(default: the registry's).")] = None,
    video_model: Annotated[list[str] | None, typer.Option(
        "--video-model", help="KIND=NAME|DIR: a model of the Restyle panel's video engines, KIND "
                              "one of animatediff (the SD 1.5 base), motion, wan-vace, canny, pose, "
                              "depth (default: the registry's).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu for the models (default: the best here).")] = None,
    size: Annotated[str, typer.Option("--size", help="Window size WxH.")] = "1400x900",
) -> None:
    """Open the editor: scrub, click objects, propagate masks, generate and restyle, export."""
    from kinema.app.segment_jobs import ModelChoice, check_backend
    from kinema.cli.console import exit_on_error, fail, out
    from kinema.cli.restyle_commands import parse_controlnets
    from kinema.core.errors import InvalidArgumentError
    from kinema.core.extras import require

    with exit_on_error():
        check_backend(backend)
        video_models = _video_models(video_model or [])
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise InvalidArgumentError(f"--size {size!r} is not WxH, e.g. 1400x900") from None
        for module in ("imgui_bundle", "moderngl"):
            require(module, "gui", feature="the editor")
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or
                                                      os.environ.get("WAYLAND_DISPLAY")):
            raise InvalidArgumentError("no display to open a window on",
                                       hint="run it on a desktop, or under xvfb-run for screenshots")
        from kinema.ui.editor import Editor
        from kinema.ui.window import Window, recent_files

        if path is None:
            recent = recent_files()
            if not recent:
                raise InvalidArgumentError("nothing to open", hint="kinema edit VIDEO (or a project folder)")
            path = Path(recent[0])
        editor = Editor.open(path, backend=backend, choice=ModelChoice(model=model, device=device),
                             sdxl=sdxl, controlnets=parse_controlnets(controlnet or []),
                             video_models=video_models)
        recent_files(add=str(path.resolve()))
        script = [c.strip() for c in (do or "").split(";") if c.strip()]
        window = Window(editor, screenshot=screenshot, script=script, size=(width, height))
        try:
            shot = window.run()
            # Closing the window saves an interactive session; a scripted one saves only when
            # its script says `save`, and undecided unsaved edits of an earlier one stay put.
            if not script and screenshot is None and not editor.pending_autosave:
                editor.file.save()
        finally:
            editor.close()
        if window.failure is not None:
            fail(window.failure)
        if screenshot is not None:
            if shot is None or shot.size == 0:
                fail("the window could not be captured")
            from kinema.core.atomic import atomic_write_bytes
            from kinema.media.image import encode_png

            atomic_write_bytes(screenshot, encode_png(shot[..., :3].copy()))
            out.print(f"wrote {screenshot}")



def run() -> None:
    """Console-script entry point."""
    from kinema.cli import serve_commands
    from kinema.cli.main import app
    from kinema.cli.main import run as run_cli
    from kinema.serve import serve

    app.command()(edit)
    serve_commands.start = serve
    run_cli()



def _video_models(values: list[str]) -> dict[str, str]:
    """``--video-model KIND=NAME|DIR`` options as the editor's video models by kind."""
    from kinema.core.errors import InvalidArgumentError
    from kinema.ui.model.video_restyle import MODEL_KEYS

    found = {}
    for value in values:
        kind, equals, model = value.partition("=")
        if not equals or not model or kind not in MODEL_KEYS:
            raise InvalidArgumentError(f"--video-model {value!r} is not KIND=NAME|DIR",
                                       hint=f"KIND is one of {', '.join(MODEL_KEYS)}")
        found[kind] = model
    return found

