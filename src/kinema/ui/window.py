"""The editor window (Dear ImGui through imgui-bundle, OpenGL through moderngl).

It draws the parts of :class:`~kinema.ui.editor.Editor` and forwards events to their methods;
nothing here decides anything, or changes the document, other than through them. ``script``
commands (``kinema edit --do``) drive the same methods a user's clicks do, one per UI frame,
for screenshots, tests and bug reports.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kinema.app.pose_jobs import Skeleton
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.frames import BLEND_MODES
from kinema.core.jobs import Job
from kinema.ui.editor import Editor
from kinema.ui.model.exports import EXPORTS
from kinema.ui.model.tools import TOOLS

SIDE_WIDTH = 300
PREVIEW_SIZE = 130
"""Longest side of a preview in the side panel, in screen pixels."""
GENERATE_COMMANDS = ("generate", "place", "restyle", "style")
"""Script commands that show the side panel's Generate tab."""
TIMELINE_HEIGHT = 230
STYLE_KEY_COLOUR = (255, 120, 200)
"""The diamonds marking a style layer's keys on its timeline row (RGB)."""
SHORTCUTS = [
    ("Space", "play / pause"), ("J / K / L", "shuttle back / stop / forward (again: faster)"),
    ("Left / Right", "step a frame"), ("Home / End", "in / out point"), ("I / O", "set in / out"),
    ("left click", "add to the object (point tool)"), ("right click", "not the object"),
    ("drag", "box (box tool) or paint (brush tool; right button erases)"),
    ("F", "propagate forward"), ("B", "propagate backward"), ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo"),
    ("Ctrl+S", "save"), ("mouse wheel", "zoom the viewer"), ("middle drag", "pan"), ("0", "fit"),
    ("P", "pose overlay on / off (View menu)"),
    ("drop a PNG on the window", "a painted key of the selected object at the playhead's frame"),
    ("Generate: click to place", "the next left click in the viewer places the asset")]


class Window:
    """The running editor window."""

    def __init__(self, editor: Editor, *, screenshot: Path | None = None,
                 script: list[str] | None = None, size: tuple[int, int] = (1400, 900),
                 proxy: bool = True) -> None:
        self.editor = editor
        self.screenshot = screenshot
        self.script = list(script or [])
        self.size = size
        self.viewer = None
        self.zoom: float | None = None  # None: fit
        self.pan = np.zeros(2)
        self.drag_from: tuple[float, float] | None = None
        self.brush_radius = 12.0
        self.text_prompt = ""
        self.next_n = 10
        self.export_path = str(editor.folder.parent / f"{editor.folder.stem}_matte.mov")
        self.export_kind = 0
        self.frames_drawn = 0
        self.frame_times: list[float] = []
        self._last = time.perf_counter()
        self._filmstrip: np.ndarray | None = None
        self._filmstrip_tex = None
        self._peaks: np.ndarray | None = None
        self._quit_after = 3  # frames to draw after the script ends, before a screenshot
        self.scrubbing = False
        self.script_scrub = False
        self.rename_to = ""
        self.proxy = proxy
        self.failure: str | None = None
        """Why the script stopped: a command or a job it started failed."""
        self._scripting = bool(self.script)
        self.tab_request: str | None = None  # a side panel tab to show (scripts pick theirs)
        self.placing = False  # the viewer's next left click places the Generate panel's asset
        self.place_scale = 1.0
        self.lora_path = ""
        self.lora_weight = 0.8
        self._textures: dict[str, tuple[np.ndarray, object]] = {}  # preview name: (image, texture)
        self._drops: list[list[str]] = []  # files dropped on the window, for the next UI frame
        self._drops_lock = threading.Lock()
        self._drop_callback: object = None  # kept alive while GLFW may call it

    # -- running ------------------------------------------------------------------------------

    def run(self) -> np.ndarray | None:
        """Show the window until it is closed (or the script and screenshot are done); returns
        the last frame as an image when a screenshot was asked for."""
        from imgui_bundle import hello_imgui, immapp

        params = hello_imgui.RunnerParams()
        params.app_window_params.window_title = f"kinema - {self.editor.folder.name}"
        params.app_window_params.window_geometry.size = self.size
        # Window layout settings go to the user's config folder, never into the working folder;
        # scripted runs (screenshots, tests) keep none, so they always look the same.
        params.ini_folder_type = hello_imgui.IniFolderType.app_user_config_folder
        params.ini_filename = "kinema/editor.ini"
        params.ini_filename_use_app_window_title = False
        params.ini_disable = bool(self.script) or self.screenshot is not None
        params.callbacks.show_gui = self.gui
        params.callbacks.post_init = self._post_init
        params.callbacks.before_exit = self._before_exit
        # Idle at a low rate when nothing happens (input wakes it at once): the CPU goes to
        # jobs. Scripted runs (screenshots, benchmarks) draw every frame.
        params.fps_idling.enable_idling = not self.script and self.screenshot is None
        params.imgui_window_params.show_menu_bar = True
        params.imgui_window_params.show_menu_view = False  # hello_imgui's own; ours is in menus()
        params.callbacks.show_menus = self.menus
        threading.Thread(target=self._load_timeline_media, daemon=True).start()
        if self.proxy:
            self.editor.session.guard(self.editor.picture.use_proxy)
        immapp.run(params)
        if self.screenshot is None:
            return None
        return np.asarray(hello_imgui.final_app_window_screenshot())

    def _post_init(self) -> None:
        import moderngl

        from kinema.ui.viewer import Viewer

        self.ctx = moderngl.create_context()
        self.viewer = Viewer(self.ctx)
        self._listen_for_drops()

    def _listen_for_drops(self) -> None:
        """Have GLFW tell :meth:`dropped` about files dropped on the window (the GLFW library
        imgui-bundle runs on, through ctypes; another backend gets no drops)."""
        import ctypes

        from imgui_bundle import hello_imgui

        try:
            address = hello_imgui.get_glfw_window_address()
            glfw = ctypes.CDLL("libglfw.so.3")  # the one imgui-bundle loaded (same soname)
        except (AttributeError, OSError, RuntimeError) as exc:
            self.editor.session.note(f"dropping files is unavailable: {exc}", error=True)
            return
        if not address:
            return
        drop_fun = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p))

        def on_drop(_window: object, count: int, paths: ctypes.Array[ctypes.c_char_p]) -> None:
            self.dropped([paths[k].decode("utf-8", "replace") for k in range(count)])

        self._drop_callback = drop_fun(on_drop)
        glfw.glfwSetDropCallback.argtypes = [ctypes.c_void_p, drop_fun]
        glfw.glfwSetDropCallback.restype = ctypes.c_void_p
        glfw.glfwSetDropCallback(ctypes.c_void_p(address), self._drop_callback)

    def dropped(self, paths: list[str]) -> None:
        """Files dropped on the window (from GLFW's callback): taken in on the next UI frame."""
        with self._drops_lock:
            self._drops.append(list(paths))

    def take_drops(self) -> None:
        """Each drop since the last frame becomes a painted key of the selected object at the
        playhead (:meth:`StyleKeys.drop`); a bad one is a note."""
        with self._drops_lock:
            drops, self._drops = self._drops, []
        for paths in drops:
            self.editor.session.guard(lambda paths=paths: self.editor.styles.drop(paths))

    def _before_exit(self) -> None:
        if self.viewer is not None:
            self.viewer.release()

    def _load_timeline_media(self) -> None:
        """Filmstrip and waveform, off the UI thread (their own reader)."""
        from kinema.media import open_video
        from kinema.media.audio import audio_peaks

        try:
            session = self.editor.session
            with open_video(session.video_path) as reader:
                self._filmstrip = reader.thumbnails(12, height=48)
            if session.media.has_audio:
                self._peaks = audio_peaks(session.video_path, 600)
        except Exception as exc:
            self.editor.session.note(f"timeline previews unavailable: {exc}", error=True)

    # -- one UI frame ---------------------------------------------------------------------------

    def gui(self) -> None:
        from imgui_bundle import hello_imgui, imgui

        now = time.perf_counter()
        self.frame_times.append(now - self._last)
        self._last = now
        ed = self.editor
        ed.transport.tick()
        failed = ed.poll()
        if failed and self._scripting:
            self.failure = failed[0]
        self.take_drops()
        self._keys()
        avail = imgui.get_content_region_avail()
        view_w, view_h = avail.x - SIDE_WIDTH - 8, avail.y - TIMELINE_HEIGHT - 8
        imgui.begin_child("viewer", imgui.ImVec2(view_w, view_h))
        self._viewer(view_w, view_h)
        imgui.end_child()
        imgui.same_line()
        imgui.begin_child("side", imgui.ImVec2(SIDE_WIDTH, view_h))
        self._side_panel()
        imgui.end_child()
        imgui.begin_child("timeline", imgui.ImVec2(avail.x, TIMELINE_HEIGHT - 4))
        self._timeline(avail.x)
        imgui.end_child()
        self._notes()
        self._recovery_prompt()
        self.frames_drawn += 1
        if self._run_script():
            hello_imgui.get_runner_params().app_shall_exit = True

    def _run_script(self) -> bool:
        """One script command per UI frame (after jobs finish); True when it is time to exit: the
        script and screenshot are done, or a command or a job it started failed."""
        ed = self.editor
        if self.failure is not None:
            return True
        if ed.busy() or self.frames_drawn < 2:
            return False
        if self.script:
            command = self.script.pop(0)
            self.script_scrub = command.startswith("scrub ")
            if command.split(" ", 1)[0] in GENERATE_COMMANDS:
                self.tab_request = "Generate"
            try:
                run_command(ed, "seek " + command[6:] if self.script_scrub else command)
            except KinemaError as exc:
                self.failure = f"{command}: {exc}"
                return True
            return False
        self._scripting = False
        if self.screenshot is None:
            return False
        self._quit_after -= 1
        return self._quit_after <= 0

    # -- pieces ---------------------------------------------------------------------------------

    def _keys(self) -> None:
        from imgui_bundle import imgui

        io = imgui.get_io()
        if io.want_text_input:
            return
        ed = self.editor
        play, propagate = ed.transport, ed.propagation.propagate
        ctrl, shift = io.key_ctrl, io.key_shift
        pressed = imgui.is_key_pressed
        k = imgui.Key
        actions: list[tuple[bool, Callable[[], object]]] = [
            (pressed(k.space), play.toggle_play), (pressed(k.j), lambda: play.shuttle("j")),
            (pressed(k.k), lambda: play.shuttle("k")), (pressed(k.l), lambda: play.shuttle("l")),
            (pressed(k.left_arrow), lambda: play.step(-1)), (pressed(k.right_arrow), lambda: play.step(1)),
            (pressed(k.home), play.home), (pressed(k.end), play.end),
            (pressed(k.i) and not ctrl, play.set_in), (pressed(k.o) and not ctrl, play.set_out),
            (pressed(k.z) and ctrl and not shift, ed.history.undo),
            (pressed(k.z) and ctrl and shift, ed.history.redo),
            (pressed(k.s) and ctrl, ed.session.save),
            (pressed(k.f) and not ctrl, lambda: propagate("forward")),
            (pressed(k.b) and not ctrl, lambda: propagate("backward")),
            (pressed(k._0), lambda: setattr(self, "zoom", None)),
            (pressed(k.p) and not ctrl, ed.pose.toggle),
        ]
        for hit, action in actions:
            if hit:
                ed.session.guard(action)

    def _viewer(self, width: float, height: float) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        if self.viewer is None:
            return
        fw, fh = ed.session.size
        guard, tools, playhead = ed.session.guard, ed.tools, ed.transport.playhead
        fit = min(width / fw, height / fh)
        scale = fit if self.zoom is None else self.zoom
        origin = imgui.get_cursor_screen_pos()
        x0 = origin.x + (width - fw * scale) / 2 + self.pan[0]
        y0 = origin.y + (height - fh * scale) / 2 + self.pan[1]
        if self.zoom is not None and scale >= 1:
            x0, y0 = round(x0), round(y0)  # pixel-exact at whole zooms
        overlays = ed.objects.overlays(playhead)
        key = (playhead, tuple(id(m) for m, _ in overlays), tuple(o.visible for o in ed.objects),
               tuple(o.colour for o in ed.objects), self._mask_version())
        fast = ed.transport.playing or self.scrubbing or self.script_scrub
        preview = ed.restyle.video.preview(playhead)  # a video restyle's latest window, while it runs
        shown = ed.picture.shown(fast=fast) if preview is None else preview
        key += (fast, ed.history.revision, preview is None, ed.restyle.video.received)
        tex = self.viewer.draw(shown, overlays, key,
                               shown=(round(fw * scale), round(fh * scale)), full=(fw, fh))
        self.viewer.set_zoom_filter(scale)
        draw = imgui.get_window_draw_list()
        draw.add_image(imgui.ImTextureRef(tex), imgui.ImVec2(x0, y0),
                       imgui.ImVec2(x0 + fw * scale, y0 + fh * scale))
        skeleton = ed.pose.skeleton(playhead, near=3 if fast else 0)
        if skeleton is not None:
            _draw_skeleton(draw, skeleton, x0, y0, scale)
        imgui.invisible_button("canvas", imgui.ImVec2(width, height),
                               imgui.ButtonFlags_.mouse_button_left | imgui.ButtonFlags_.mouse_button_right
                               | imgui.ButtonFlags_.mouse_button_middle)
        if not imgui.is_item_hovered() and self.drag_from is None:
            return
        io = imgui.get_io()
        mx, my = (io.mouse_pos.x - x0) / scale, (io.mouse_pos.y - y0) / scale
        if io.mouse_wheel and imgui.is_item_hovered():
            self.zoom = max(0.1, min(16.0, scale * (1.25 if io.mouse_wheel > 0 else 0.8)))
        if imgui.is_mouse_dragging(imgui.MouseButton_.middle):
            self.pan += (io.mouse_delta.x, io.mouse_delta.y)
        inside = 0 <= mx < fw and 0 <= my < fh
        tool = tools.tool
        if self.placing:
            if inside and imgui.is_mouse_clicked(0):
                self.placing = False
                guard(lambda: ed.generate.place(mx, my, self.place_scale))
        elif tool == "brush" and inside and (imgui.is_mouse_down(0) or imgui.is_mouse_down(1)) \
                and imgui.is_item_hovered():
            guard(lambda: tools.brush(mx, my, self.brush_radius, erase=imgui.is_mouse_down(1)))
        elif tool == "box":
            if imgui.is_mouse_clicked(0) and inside:
                self.drag_from = (mx, my)
            if self.drag_from is not None:
                sx, sy = self.drag_from
                draw.add_rect(imgui.ImVec2(x0 + sx * scale, y0 + sy * scale), io.mouse_pos,
                              imgui.get_color_u32(imgui.ImVec4(1, 1, 0, 1)), 0, 0, 2)
                if imgui.is_mouse_released(0):
                    self.drag_from = None
                    if abs(mx - sx) > 3 and abs(my - sy) > 3:
                        guard(lambda: tools.box(sx, sy, min(max(mx, 0), fw - 1), min(max(my, 0), fh - 1)))
        elif tool == "point" and inside:
            if imgui.is_mouse_clicked(0):
                guard(lambda: tools.click(mx, my))
            elif imgui.is_mouse_clicked(1):
                guard(lambda: tools.click(mx, my, positive=False))

    def _mask_version(self) -> tuple:
        """Changes whenever a mask on the current frame could have changed: jobs write them
        (edits move the history's revision, in the viewer's key too)."""
        ed = self.editor
        return tuple(int(o.store.state(ed.transport.playhead)) for o in ed.objects) + (
            tuple(j.progress for j in ed.jobs.items),)

    def _side_panel(self) -> None:
        from imgui_bundle import imgui

        tabs = {"Masks": (("Tool", self._tool_panel), ("Objects", self._objects_panel),
                          ("Propagate", self._propagate_panel), ("Layers", self._layers_panel),
                          ("Export", self._export_panel), ("Jobs", self._jobs_panel)),
                "Generate": (("Remote worker", self._remote_panel), ("Generate", self._generate_panel),
                             ("Restyle", self._restyle_panel),
                             ("Style layer", self._style_panel), ("Jobs", self._jobs_panel))}
        if not imgui.begin_tab_bar("side tabs"):
            return
        for name, panels in tabs.items():
            flags = imgui.TabItemFlags_.set_selected if name == self.tab_request else 0
            if imgui.begin_tab_item(name, None, flags)[0]:
                if name == self.tab_request:
                    self.tab_request = None
                for title, panel in panels:
                    imgui.separator_text(title)
                    panel()
                imgui.end_tab_item()
        imgui.end_tab_bar()

    def _remote_panel(self) -> None:
        """Whether Generate and the restyle run on a ``kinema serve`` worker, and its
        setting (kept for the next session as it is edited)."""
        from imgui_bundle import imgui

        from kinema.ui.model.remote import MODEL_ROLES, TESTING

        ed = self.editor
        remote, guard = ed.remote, ed.session.guard
        changed, remote.on = imgui.checkbox("run on the worker##remote", remote.on)
        if remote.on:
            imgui.same_line()
            imgui.text_disabled(remote.host or "(no URL)")
        if imgui.tree_node("setting##remote"):
            edited, remote.url = imgui.input_text("URL##remote", remote.url)
            changed |= edited
            edited, text = imgui.input_text("token file##remote", str(remote.token_file or ""))
            if edited:
                remote.token_file = Path(text.strip()).expanduser() if text.strip() else None
            changed |= edited
            imgui.text_disabled("no token file: $KINEMA_TOKEN")
            imgui.text_wrapped("Models on the worker are names it knows (registry names, or kinema serve "
                               "--model NAME=DIR there): folders here cannot travel. Empty: its default.")
            for role in MODEL_ROLES:
                edited, name = imgui.input_text(f"{role}##remote", remote.models.get(role, ""))
                if edited:
                    remote.models[role] = name.strip()
                changed |= edited
            if imgui.button("Test connection") and remote.status != TESTING:
                remote.start_test(ed.jobs)
            if remote.status is not None:
                imgui.text_wrapped(remote.status)
            imgui.tree_pop()
        if changed:
            guard(remote.save)

    def _generate_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        gen, guard = ed.generate, ed.session.guard
        _, gen.prompt = imgui.input_text_multiline("prompt##gen", gen.prompt, imgui.ImVec2(-1, 44))
        _, gen.negative = imgui.input_text("negative##gen", gen.negative)
        _, gen.seed = imgui.input_int("seed##gen", gen.seed)
        card = gen.size is None
        changed, card = imgui.checkbox("card size", card)
        if changed:
            gen.size = None if card else (1024, 1024)
        if gen.size is not None:
            imgui.same_line()
            imgui.set_next_item_width(120)
            changed, size = imgui.input_int2("##size", list(gen.size))
            if changed:
                gen.size = (max(8, size[0]), max(8, size[1]))
        _, self.place_scale = imgui.slider_float("scale##gen", self.place_scale, 0.1, 4.0)
        self._lora_list("gen", gen.loras)
        label = "click in the viewer..." if self.placing else "Generate: click to place"
        if imgui.button(label):
            self.placing = not self.placing
        self._job_bar(gen.job)
        if gen.preview is not None:
            self._preview("asset", gen.preview)
        if gen.job is not None and imgui.small_button("cancel##gen"):
            guard(gen.job.cancel)

    def _restyle_panel(self) -> None:
        from imgui_bundle import imgui

        from kinema.app.restyle_jobs import CONTROL_KINDS
        from kinema.app.video_restyle_jobs import CONTROL_KINDS as VIDEO_CONTROL_KINDS
        from kinema.ui.model.restyle import ENGINES

        ed = self.editor
        style, guard = ed.restyle, ed.session.guard
        active = ed.objects.active
        if active is None:
            imgui.text_disabled("add an object to restyle it")
            return
        imgui.text(f"object: {ed.objects.get(active).name}")
        imgui.set_next_item_width(160)
        changed, index = imgui.combo("engine##style", ENGINES.index(style.engine), list(ENGINES))
        if changed:
            guard(lambda: style.set_engine(ENGINES[index]))
        video = style.engine != "keys"
        _, style.prompt = imgui.input_text_multiline("prompt##style", style.prompt, imgui.ImVec2(-1, 44))
        _, style.negative = imgui.input_text("negative##style", style.negative)
        _, style.strength = imgui.slider_float("strength", style.strength, 0.05, 1.0)
        _, style.seed = imgui.input_int("seed##style", style.seed)
        offered = VIDEO_CONTROL_KINDS[style.engine] if video else CONTROL_KINDS
        # a condition set for another engine stays listed, so it can be taken out
        for kind in [*offered, *(k for k in style.controls if k not in offered)]:
            on = kind in style.controls
            changed, on = imgui.checkbox(f"{kind}##control", on)
            if changed:
                style.set_control(kind, 1.0 if on else None)
            if on:
                imgui.same_line()
                imgui.set_next_item_width(120)
                _, style.controls[kind] = imgui.slider_float(f"##w{kind}", style.controls[kind], 0.0, 2.0)
        if video:
            self._video_options()
        else:
            self._lora_list("style", style.loras)
            keys = style.key_frames()
            imgui.text_wrapped("keys: " + (", ".join(map(str, keys)) or "none"))
            playhead = ed.transport.playhead
            if imgui.small_button("remove key here" if playhead in keys else "add key here"):
                guard(style.toggle_key)
            imgui.same_line()
        if imgui.button("Restyle"):
            guard(style.run)
        job = style.job
        self._job_bar(job)
        if job is not None and not job.finished:
            if job.progress is not None and job.progress.message:
                imgui.text_disabled(job.progress.message)
            if imgui.small_button("cancel##restyle"):
                job.cancel()
        if video:
            latest = style.video.latest
            if latest is not None:
                shown = latest.frame(ed.transport.playhead)
                imgui.text(f"window from frame {latest.first} ({len(latest.frames)} frames)")
                self._preview("window", shown if shown is not None else latest.frames[0])
        else:
            for frame, image in sorted(style.previews.items()):
                imgui.text(f"key {frame}")
                self._preview(f"key {frame}", image)

    def _video_options(self) -> None:
        """A video engine's window and overlap (0: the engine's default), wan-vace's reference
        picture, and whether the viewer shows the finished windows while the job runs."""
        from imgui_bundle import imgui

        style = self.editor.restyle
        video = style.video
        size, step = video.defaults(style.engine)
        imgui.set_next_item_width(100)
        changed, window = imgui.input_int(f"window (0: {size})##video", video.window or 0)
        if changed:
            video.window = max(0, window) or None
        imgui.set_next_item_width(100)
        changed, overlap = imgui.input_int(f"overlap (0: {step})##video", video.overlap or 0)
        if changed:
            video.overlap = max(0, overlap) or None
        if style.engine == "wan-vace":
            imgui.set_next_item_width(200)
            changed, text = imgui.input_text("reference##video", str(video.reference or ""))
            if changed:
                video.reference = Path(text.strip()).expanduser() if text.strip() else None
        _, video.show_preview = imgui.checkbox("show windows in the viewer", video.show_preview)

    def _style_panel(self) -> None:
        """The selected object's style layer: its keys, how to add one, and propagating."""
        from imgui_bundle import imgui

        ed = self.editor
        styles, active = ed.styles, ed.objects.active
        if active is not None:
            layer = styles.layer_of(active)
            keys = styles.key_frames(layer) if layer is not None else []
            names = ", ".join(map(str, keys)) or "none"
            imgui.text_wrapped(f"{ed.objects.get(active).name}: keys {names}")
            imgui.text_disabled(f"drop a painted PNG on the window: the key of frame {ed.transport.playhead}")
        else:
            imgui.text_disabled("select an object to paint its keys")
        if imgui.button("Propagate style"):
            ed.session.guard(styles.propagate)
        self._job_bar(styles.job)
        if styles.job is not None and not styles.job.finished and imgui.small_button("cancel##style"):
            styles.job.cancel()

    def _lora_list(self, name: str, loras: list[tuple[Path, float]]) -> None:
        """The LoRA files of a panel, each with its weight and a remove button, and one to add."""
        from imgui_bundle import imgui

        for index, (path, weight) in enumerate(list(loras)):
            imgui.push_id(f"{name}{index}")
            imgui.set_next_item_width(80)
            changed, weight = imgui.slider_float("##w", weight, 0.0, 1.5)
            if changed:
                loras[index] = (path, weight)
            imgui.same_line()
            imgui.text(path.name[:22])
            imgui.same_line()
            if imgui.small_button("x"):
                loras.pop(index)
            imgui.pop_id()
        imgui.set_next_item_width(150)
        _, self.lora_path = imgui.input_text(f"##lora{name}", self.lora_path)
        imgui.same_line()
        if imgui.small_button(f"+ LoRA##{name}") and self.lora_path.strip():
            loras.append((Path(self.lora_path.strip()).expanduser(), self.lora_weight))
            self.lora_path = ""

    def _job_bar(self, job: Job | None) -> None:
        from imgui_bundle import imgui

        if job is not None:
            imgui.progress_bar(job.fraction, imgui.ImVec2(-1, 0), job.state)

    def _preview(self, name: str, image: np.ndarray) -> None:
        """``image`` (RGB or RGBA) at most :data:`PREVIEW_SIZE` on a side, uploaded once."""
        from imgui_bundle import imgui

        known = self._textures.get(name)
        if known is None or known[0] is not image:
            if known is not None:
                known[1].release()  # type: ignore[attr-defined]
            picture = np.ascontiguousarray(image)
            texture = self.ctx.texture((picture.shape[1], picture.shape[0]), picture.shape[2],
                                       picture.tobytes())
            self._textures[name] = known = (image, texture)
        height, width = image.shape[:2]
        fit = PREVIEW_SIZE / max(width, height)
        imgui.image(imgui.ImTextureRef(known[1].glo), imgui.ImVec2(width * fit, height * fit))  # type: ignore[attr-defined]

    def _tool_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        tools = ed.tools
        for name in TOOLS:
            if imgui.radio_button(name, tools.tool == name):
                tools.choose(name)
            imgui.same_line()
        imgui.new_line()
        if tools.tool == "brush":
            _, self.brush_radius = imgui.slider_float("radius", self.brush_radius, 1, 100)
        _, self.text_prompt = imgui.input_text("##text", self.text_prompt)
        imgui.same_line()
        if imgui.button("Find") and self.text_prompt.strip():
            ed.session.guard(lambda: tools.text(self.text_prompt.strip()))

    def _objects_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        objects, guard = ed.objects, ed.session.guard
        for obj in list(objects):
            imgui.push_id(obj.track_id)
            changed, visible = imgui.checkbox("##vis", obj.visible)
            if changed:
                objects.set_visible(obj.track_id, visible)
            imgui.same_line()
            changed, colour = imgui.color_edit3("##col", [c / 255 for c in obj.colour],
                                                imgui.ColorEditFlags_.no_inputs)
            if changed:
                guard(lambda obj=obj, colour=colour: objects.recolour(
                    obj.track_id, tuple(int(c * 255) for c in colour)))
            imgui.same_line()
            if imgui.selectable(obj.name, objects.active == obj.track_id, 0, imgui.ImVec2(150, 0))[0]:
                objects.select(obj.track_id)
            imgui.same_line()
            if imgui.small_button("x"):
                guard(lambda obj=obj: objects.delete(obj.track_id))
            imgui.pop_id()
        if imgui.button("+ object"):
            guard(objects.add)
        active = objects.active
        if active is not None:
            imgui.same_line()
            imgui.set_next_item_width(150)
            _, self.rename_to = imgui.input_text("rename", self.rename_to or objects.get(active).name)
            if imgui.is_item_deactivated_after_edit() and self.rename_to.strip():
                guard(lambda: objects.rename(active, self.rename_to.strip()))
                self.rename_to = ""
        if self.viewer is not None:
            changed, fill = imgui.slider_float("fill", self.viewer.fill, 0.0, 1.0)
            if changed:
                self.viewer.fill = fill
                self.viewer.invalidate()

    def _propagate_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        guard, propagate, tools = ed.session.guard, ed.propagation.propagate, ed.tools
        if imgui.button("<< back"):
            guard(lambda: propagate("backward"))
        imgui.same_line()
        if imgui.button("forward >>"):
            guard(lambda: propagate("forward"))
        imgui.same_line()
        if imgui.button("next"):
            guard(lambda: propagate("forward", self.next_n))
        imgui.same_line()
        imgui.set_next_item_width(60)
        _, self.next_n = imgui.input_int("##n", self.next_n, 0)
        if imgui.button("whole clip"):
            guard(lambda: (propagate("forward"), propagate("backward")))
        if imgui.button("grow"):
            guard(lambda: tools.adjust(grow=2))
        imgui.same_line()
        if imgui.button("shrink"):
            guard(lambda: tools.adjust(grow=-2))
        imgui.same_line()
        if imgui.button("smooth edge"):
            guard(lambda: tools.adjust(feather=4))

    def _layers_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        guard, layers = ed.session.guard, ed.layers
        stack = layers.items
        for index, layer in reversed(list(enumerate(stack))):
            imgui.push_id(layer.id)
            changed, visible = imgui.checkbox("##v", layer.visible)
            if changed:
                guard(lambda layer=layer, visible=visible: layers.show(layer.id, visible))
            imgui.same_line()
            imgui.text(layer.name[:14])
            imgui.same_line()
            if imgui.arrow_button("##up", imgui.Dir.up) and index < len(stack) - 1:
                guard(lambda layer=layer, index=index: layers.move(layer.id, index + 1))
            imgui.same_line()
            if imgui.arrow_button("##dn", imgui.Dir.down) and index > 0:
                guard(lambda layer=layer, index=index: layers.move(layer.id, index - 1))
            imgui.set_next_item_width(90)
            opacity = float(layer.transform.opacity.value)  # type: ignore[arg-type]
            changed, opacity = imgui.slider_float("##o", opacity, 0, 1)
            if imgui.is_item_deactivated_after_edit():
                guard(lambda layer=layer, opacity=opacity: layers.set_opacity(layer.id, opacity))
            imgui.same_line()
            imgui.set_next_item_width(110)
            current = BLEND_MODES.index(layer.blend_mode)
            changed, current = imgui.combo("##b", current, list(BLEND_MODES))
            if changed:
                guard(lambda layer=layer, current=current: layers.set_blend(layer.id, BLEND_MODES[current]))
            imgui.pop_id()

    def _export_panel(self) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        _, self.export_kind = imgui.combo("##kind", self.export_kind, list(EXPORTS))
        _, self.export_path = imgui.input_text("##path", self.export_path)
        if imgui.button("Export"):
            kind = EXPORTS[self.export_kind]
            ed.session.guard(lambda: ed.exports.export(kind, self.export_path))

    def _jobs_panel(self) -> None:
        from imgui_bundle import imgui

        for job in self.editor.jobs.items:
            imgui.push_id(str(id(job)))
            imgui.progress_bar(job.fraction, imgui.ImVec2(200, 0), f"{job.label}: {job.state}")
            if not job.finished:
                imgui.same_line()
                if imgui.small_button("cancel"):
                    job.cancel()
            imgui.pop_id()

    def _timeline(self, width: float) -> None:
        from imgui_bundle import imgui

        ed = self.editor
        play = ed.transport
        if imgui.button("|<"):
            play.home()
        imgui.same_line()
        if imgui.button("<"):
            play.step(-1)
        imgui.same_line()
        if imgui.button("pause" if play.playing else "play"):
            play.toggle_play()
        imgui.same_line()
        if imgui.button(">"):
            play.step(1)
        imgui.same_line()
        if imgui.button(">|"):
            play.end()
        imgui.same_line()
        imgui.text(play.time_label)
        imgui.same_line()
        recent = self.frame_times[-60:]
        imgui.text_disabled(f"  UI {1 / max(np.mean(recent), 1e-6):.0f} fps" if recent else "")
        draw = imgui.get_window_draw_list()
        origin = imgui.get_cursor_screen_pos()
        left, right = origin.x + 110, origin.x + width - 16
        span = max(right - left, 1)

        def x_of(frame: float) -> float:
            return left + span * frame / max(play.frames, 1)

        rows = [("filmstrip", 48), ("audio", 28)] + [(o.name, 16) for o in ed.objects] + \
            [(layer.name, 14) for layer in reversed(ed.layers.items)]
        y = origin.y
        white = imgui.get_color_u32(imgui.ImVec4(1, 1, 1, 1))
        for label, height in rows:
            draw.add_text(imgui.ImVec2(origin.x, y), white, label[:14])
            y += height + 4
        top = origin.y
        self._draw_filmstrip(draw, left, top, span, 48)
        self._draw_waveform(draw, left, top + 52, span, 28)
        y = top + 52 + 32
        for obj in ed.objects:
            states = ed.objects.lane(obj.track_id)
            colour = imgui.get_color_u32(imgui.ImVec4(*[c / 255 for c in obj.colour], 0.55))
            key_colour = imgui.get_color_u32(imgui.ImVec4(*[c / 255 for c in obj.colour], 1.0))
            draw.add_rect_filled(imgui.ImVec2(left, y), imgui.ImVec2(right, y + 16),
                                 imgui.get_color_u32(imgui.ImVec4(0.15, 0.15, 0.15, 1)))
            if obj.track_id == ed.objects.active:
                _draw_style_keys(draw, [x_of(f + 0.5) for f in ed.restyle.key_frames()], y)
            for a, b, state in _runs(states):
                if state == 2:
                    draw.add_rect_filled(imgui.ImVec2(x_of(a), y + 3), imgui.ImVec2(x_of(b), y + 13), colour)
                elif state == 1:
                    for f in range(a, b):
                        draw.add_rect_filled(imgui.ImVec2(x_of(f) - 2, y), imgui.ImVec2(x_of(f) + 2, y + 16),
                                             key_colour)
            y += 20
        for layer in reversed(ed.layers.items):  # top first, as their labels
            draw.add_rect_filled(imgui.ImVec2(left, y + 2), imgui.ImVec2(right, y + 12),
                                 imgui.get_color_u32(imgui.ImVec4(0.3, 0.4, 0.6, 1)))
            _draw_diamonds(draw, [x_of(f + 0.5) for f in ed.styles.key_frames(layer.id)], y + 7)
            y += 18
        grey = imgui.get_color_u32(imgui.ImVec4(1, 1, 1, 0.25))
        draw.add_rect_filled(imgui.ImVec2(left, top), imgui.ImVec2(x_of(play.in_point), y), grey)
        draw.add_rect_filled(imgui.ImVec2(x_of(play.out_point), top), imgui.ImVec2(right, y), grey)
        px = x_of(play.playhead + 0.5)
        red = imgui.get_color_u32(imgui.ImVec4(1, 0.3, 0.2, 1))
        draw.add_line(imgui.ImVec2(px, top), imgui.ImVec2(px, y), red, 2)
        imgui.set_cursor_screen_pos(imgui.ImVec2(left, top))
        imgui.invisible_button("scrub", imgui.ImVec2(span, max(y - top, 1)))
        self.scrubbing = imgui.is_item_active()
        if self.scrubbing:  # click or drag on the timeline scrubs
            frame = (imgui.get_io().mouse_pos.x - left) / span * play.frames
            play.seek(int(frame))

    def _draw_filmstrip(self, draw: object, left: float, top: float, span: float, height: float) -> None:
        from imgui_bundle import imgui

        strip = self._filmstrip
        if strip is None:
            return
        if self._filmstrip_tex is None:
            n, h, w, _ = strip.shape
            atlas = np.ascontiguousarray(np.concatenate(list(strip), axis=1))
            self._filmstrip_tex = self.ctx.texture((n * w, h), 3, atlas.tobytes())
        draw.add_image(imgui.ImTextureRef(self._filmstrip_tex.glo), imgui.ImVec2(left, top),  # type: ignore[attr-defined]
                       imgui.ImVec2(left + span, top + height))

    def _draw_waveform(self, draw: object, left: float, top: float, span: float, height: float) -> None:
        from imgui_bundle import imgui

        peaks = self._peaks
        if peaks is None:
            return
        colour = imgui.get_color_u32(imgui.ImVec4(0.4, 0.8, 0.5, 1))
        mid = top + height / 2
        step = span / len(peaks)
        for k, (lo, hi) in enumerate(peaks):
            x = left + k * step
            draw.add_line(imgui.ImVec2(x, mid - hi * height / 2), imgui.ImVec2(x, mid - lo * height / 2),  # type: ignore[attr-defined]
                          colour)

    def _notes(self) -> None:
        from imgui_bundle import imgui

        now = time.monotonic()
        recent = [n for n in self.editor.session.notes if now - n.at < 6]
        if not recent:
            return
        viewport = imgui.get_main_viewport()
        imgui.set_next_window_pos(imgui.ImVec2(viewport.pos.x + 20, viewport.pos.y + viewport.size.y - 40),
                                  imgui.Cond_.always, imgui.ImVec2(0, 1))
        imgui.begin("notes", None, imgui.WindowFlags_.no_decoration | imgui.WindowFlags_.always_auto_resize
                    | imgui.WindowFlags_.no_inputs)
        for note in recent[-4:]:
            imgui.text_colored(imgui.ImVec4(1, 0.4, 0.4, 1) if note.error else imgui.ImVec4(0.8, 1, 0.8, 1),
                               note.text)
        imgui.end()

    def _recovery_prompt(self) -> None:
        """Ask what to do with the edits an earlier session left unsaved; the modal blocks the
        rest of the window until answered (a script answers with ``recover`` or ``discard``)."""
        from imgui_bundle import imgui

        session = self.editor.session
        title = "Unsaved edits"
        if not session.pending_autosave:
            return
        if not imgui.is_popup_open(title):
            imgui.open_popup(title)
        if imgui.begin_popup_modal(title, None, imgui.WindowFlags_.always_auto_resize)[0]:
            imgui.text("The last session of this project ended without saving its edits.")
            imgui.text("Recover brings them back (save to keep them); Discard drops them.")
            if imgui.button("Recover"):
                session.guard(session.recover)
            imgui.same_line()
            if imgui.button("Discard"):
                session.guard(session.discard_autosave)
            if not session.pending_autosave:
                imgui.close_current_popup()
            imgui.end_popup()

    def menus(self) -> None:
        from imgui_bundle import hello_imgui, imgui

        ed = self.editor
        if imgui.begin_menu("File"):
            if imgui.menu_item("Save", "Ctrl+S", False)[0]:
                ed.session.guard(ed.session.save)
            for path in recent_files():
                if imgui.menu_item(f"Recent: {Path(path).name}", "", False)[0]:
                    ed.session.note(f"close this window and run: kinema edit {path}")
            if imgui.menu_item("Quit", "", False)[0]:
                hello_imgui.get_runner_params().app_shall_exit = True
            imgui.end_menu()
        if imgui.begin_menu("Edit"):
            if imgui.menu_item("Undo", "Ctrl+Z", False)[0]:
                ed.session.guard(ed.history.undo)
            if imgui.menu_item("Redo", "Ctrl+Shift+Z", False)[0]:
                ed.session.guard(ed.history.redo)
            imgui.end_menu()
        if imgui.begin_menu("View"):
            if imgui.menu_item("Pose overlay", "P", ed.pose.on)[0]:
                ed.session.guard(ed.pose.toggle)
            imgui.end_menu()
        if imgui.begin_menu("Help"):
            for keys, what in SHORTCUTS:
                imgui.text(f"{keys:24} {what}")
            imgui.end_menu()


def _draw_skeleton(draw: object, skeleton: Skeleton, x0: float, y0: float, scale: float) -> None:
    """The pose overlay over the frame shown at ``(x0, y0)``, ``scale`` screen pixels a frame
    pixel: limbs in OpenPose's colours, then each keypoint a disc in its colour."""
    from imgui_bundle import imgui

    def colour(rgb: tuple[int, int, int], alpha: float = 1.0) -> int:
        return imgui.get_color_u32(imgui.ImVec4(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, alpha))

    width, radius = max(2.0, 6 * scale), max(3.0, 4 * scale)
    for xa, ya, xb, yb, rgb in skeleton.limbs:
        draw.add_line(imgui.ImVec2(x0 + xa * scale, y0 + ya * scale),  # type: ignore[attr-defined]
                      imgui.ImVec2(x0 + xb * scale, y0 + yb * scale), colour(rgb, 0.8), width)
    for x, y, rgb in skeleton.joints:
        draw.add_circle_filled(imgui.ImVec2(x0 + x * scale, y0 + y * scale), radius,  # type: ignore[attr-defined]
                               colour(rgb))


def _draw_style_keys(draw: object, xs: list[float], y: float) -> None:
    """The Restyle panel's key frames over the active object's lane: gold triangles."""
    from imgui_bundle import imgui

    gold = imgui.get_color_u32(imgui.ImVec4(1.0, 0.8, 0.1, 1.0))
    for x in xs:
        draw.add_triangle_filled(imgui.ImVec2(x - 5, y - 2), imgui.ImVec2(x + 5, y - 2),  # type: ignore[attr-defined]
                                 imgui.ImVec2(x, y + 6), gold)


def _draw_diamonds(draw: object, xs: list[float], y: float, radius: float = 6) -> None:
    """A style layer's keys on its timeline row: diamonds centred on ``(x, y)``."""
    from imgui_bundle import imgui

    colour = imgui.get_color_u32(imgui.ImVec4(*(c / 255 for c in STYLE_KEY_COLOUR), 1.0))
    for x in xs:
        draw.add_quad_filled(imgui.ImVec2(x, y - radius), imgui.ImVec2(x + radius, y),  # type: ignore[attr-defined]
                             imgui.ImVec2(x, y + radius), imgui.ImVec2(x - radius, y), colour)


def _runs(states: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, stop, state)`` for each run of equal non-empty states."""
    if not len(states):
        return []
    change = np.flatnonzero(np.diff(states.astype(np.int16))) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(states)]])
    return [(int(a), int(b), int(states[a])) for a, b in zip(starts, stops, strict=True) if states[a]]


def run_command(editor: Editor, line: str) -> None:
    """One scripted action: ``seek N``, ``click X Y``, ``neg X Y``, ``box X0 Y0 X1 Y1``,
    ``text WORDS``, ``brush X Y R``, ``object [NAME]``, ``propagate forward|backward [N]``,
    ``export matte|cutout|render PATH``, ``undo``, ``redo``, ``save``, ``play``, ``pose on|off``
    (the pose overlay), ``generate PROMPT...`` (the Generate panel's prompt), ``place X Y
    [SCALE]`` (make the asset and place it there on the playhead's frame), ``restyle key [N]``
    (add or take out a key frame of the active object, default the playhead's), ``restyle
    control KIND WEIGHT`` (weight 0 takes it out), ``restyle engine keys|animatediff|wan-vace``,
    ``restyle window N [OVERLAP]``, ``restyle reference [IMAGE]``, ``restyle run [PROMPT...]``, ``style drop
    IMAGE [N]`` (a painted key of the active object at frame N, default the playhead's, as a
    file dropped on the window), ``style propagate``, and ``recover`` or ``discard`` for unsaved
    edits an earlier session left. (The window adds ``scrub N``: a
    seek as dragging the playhead does it, from the proxy if there is one.) Errors raise."""
    words = shlex.split(line)
    if not words:
        return
    verb, args = words[0], words[1:]
    numbers = [float(a) for a in args if _is_number(a)]
    session, tools = editor.session, editor.tools
    actions: dict[str, Callable[[], object]] = {
        "seek": lambda: editor.transport.seek(int(numbers[0])),
        "click": lambda: tools.click(numbers[0], numbers[1]),
        "neg": lambda: tools.click(numbers[0], numbers[1], positive=False),
        "box": lambda: tools.box(*numbers[:4]),
        "text": lambda: tools.text(" ".join(args)),
        "brush": lambda: tools.brush(numbers[0], numbers[1], numbers[2]),
        "object": lambda: editor.objects.add(" ".join(args) or None),
        "propagate": lambda: editor.propagation.propagate(args[0] if args else "forward",
                                              int(numbers[0]) if numbers else None),
        "export": lambda: editor.exports.export(args[0], args[1], overwrite=True),
        "undo": editor.history.undo, "redo": editor.history.redo, "save": session.save,
        "play": editor.transport.toggle_play, "recover": session.recover,
        "discard": session.discard_autosave,
        "pose": lambda: editor.pose.set({"on": True, "off": False}[args[0]]),
        "generate": lambda: setattr(editor.generate, "prompt", " ".join(args)),
        "place": lambda: editor.generate.place(numbers[0], numbers[1], *numbers[2:3]),
        "restyle": lambda: _restyle_command(editor, args),
        "style": lambda: _style_command(editor, args),
    }
    if verb not in actions:
        raise InvalidArgumentError(f"unknown editor command {verb!r}",
                                   hint=f"use one of {', '.join(actions)}")
    try:
        actions[verb]()
    except IndexError:
        raise InvalidArgumentError(f"{line!r} is missing arguments",
                                   hint="see kinema edit --help") from None
    except KeyError:
        raise InvalidArgumentError(f"{line!r}: say on or off", hint="pose on, or pose off") from None


def _restyle_command(editor: Editor, args: list[str]) -> None:
    """``restyle key [N]``, ``restyle control KIND WEIGHT``, ``restyle engine
    keys|animatediff|wan-vace``, ``restyle window N [OVERLAP]`` (0: the engine's default),
    ``restyle reference [IMAGE]`` (wan-vace's picture; none: no picture) or ``restyle run
    [PROMPT...]``."""
    style = editor.restyle
    what, rest = args[0], args[1:]
    if what == "key":
        style.toggle_key(int(rest[0]) if rest else None)
    elif what == "control":
        weight = float(rest[1])
        style.set_control(rest[0], weight or None)
    elif what == "engine":
        style.set_engine(rest[0])
    elif what == "window":
        style.video.window = int(rest[0]) or None
        if len(rest) > 1:
            style.video.overlap = int(rest[1]) or None
    elif what == "reference":
        style.video.reference = Path(rest[0]).expanduser() if rest else None
    elif what == "run":
        if rest:
            style.prompt = " ".join(rest)
        style.run()
    else:
        raise InvalidArgumentError(f"restyle {what!r}?", hint="restyle key [N], restyle control KIND "
                                   "WEIGHT, restyle engine NAME, restyle window N [OVERLAP], restyle "
                                   "reference [IMAGE] or restyle run [PROMPT...]")


def _style_command(editor: Editor, args: list[str]) -> None:
    """``style drop IMAGE [N]`` or ``style propagate``."""
    what, rest = args[0], args[1:]
    if what == "drop":
        editor.styles.drop([rest[0]], int(rest[1]) if len(rest) > 1 else None)
    elif what == "propagate":
        editor.styles.propagate()
    else:
        raise InvalidArgumentError(f"style what? {what!r}", hint="style drop IMAGE [N], or style propagate")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def recent_files(add: str | None = None) -> list[str]:
    """The last opened videos and projects (newest first), kept in the user's config folder."""
    import json

    from platformdirs import user_config_dir

    path = Path(user_config_dir("kinema")) / "recent.json"
    try:
        items = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        items = []
    if add is not None:
        items = [add] + [i for i in items if i != add]
        items = items[:10]
        from kinema.core.atomic import atomic_write_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(items).encode())
    return [i for i in items if Path(i).exists()]
