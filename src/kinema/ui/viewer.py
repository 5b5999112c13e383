"""The viewer's GPU side: the frame as a texture and mask overlays drawn by a shader.

The frame and a label map (0 background, k = k-th visible object) are uploaded as textures
only when they change; a fragment shader tints each object in its colour at ``fill`` opacity
and draws a one-pixel outline where the label changes, into a framebuffer the size of the
frame, which the window shows with Dear ImGui at any zoom (nearest-neighbour from 100 % up, so
pixels stay exact).
"""

from __future__ import annotations

import numpy as np

from kinema.core.frames import Frame, Mask

MAX_OBJECTS = 16

VERTEX = """
#version 330
in vec2 position;
out vec2 uv;
void main() {
    // Framebuffer row 0 is the bottom, and Dear ImGui shows texture row 0 at the top: keeping
    // the picture's first row in row 0 makes it upright on screen.
    uv = vec2(position.x * 0.5 + 0.5, position.y * 0.5 + 0.5);
    gl_Position = vec4(position, 0.0, 1.0);
}
"""

FRAGMENT = """
#version 330
uniform sampler2D frame;
uniform sampler2D labels;
uniform vec3 colours[16];
uniform float fill;
uniform vec2 texel;
in vec2 uv;
out vec4 colour;

int label_at(vec2 p) { return int(texture(labels, p).r * 255.0 + 0.5); }

void main() {
    vec3 c = texture(frame, uv).rgb;
    int l = label_at(uv);
    int edge = 0;
    int n;
    n = label_at(uv + vec2(texel.x, 0.0)); if (n != l) edge = max(edge, max(n, l));
    n = label_at(uv - vec2(texel.x, 0.0)); if (n != l) edge = max(edge, max(n, l));
    n = label_at(uv + vec2(0.0, texel.y)); if (n != l) edge = max(edge, max(n, l));
    n = label_at(uv - vec2(0.0, texel.y)); if (n != l) edge = max(edge, max(n, l));
    if (l > 0) c = mix(c, colours[l - 1], fill);
    if (edge > 0) c = colours[edge - 1];
    colour = vec4(c, 1.0);
}
"""


def label_map(overlays: list[tuple[Mask, tuple[int, int, int]]], shape: tuple[int, int]) -> np.ndarray:
    """Visible masks as one ``uint8`` label map (later objects on top), ``(H, W)``."""
    labels = np.zeros(shape, np.uint8)
    for k, (mask, _) in enumerate(overlays[:MAX_OBJECTS], 1):
        labels[mask] = k
    return labels


class Viewer:
    """Frame + overlays, composited on the GPU into a texture the window can show.

    When the frame is shown smaller than it is, it is composited at the size it is shown
    (shrunk on the CPU first): a third of the pixels to upload and shade for a 1080p frame in
    a typical window, which is what keeps software OpenGL responsive. At 100 % and above the
    full frame is used, so pixels stay exact.
    """

    def __init__(self, ctx: object) -> None:
        self.ctx = ctx
        self.size: tuple[int, int] | None = None
        self.fill = 0.45
        self._key: object = None

    def _build(self, size: tuple[int, int]) -> None:
        import moderngl

        ctx: moderngl.Context = self.ctx  # type: ignore[assignment]
        if self.size is not None:
            self.release()
        w, h = size
        self.size = size
        self.frame_tex = ctx.texture((w, h), 3)
        self.frame_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.label_tex = ctx.texture((w, h), 1)
        self.label_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        for tex in (self.frame_tex, self.label_tex):
            tex.repeat_x = tex.repeat_y = False
        self.output = ctx.texture((w, h), 3)
        self.fbo = ctx.framebuffer(color_attachments=[self.output])
        self.program = ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.vao = ctx.vertex_array(self.program, [(ctx.buffer(quad.tobytes()), "2f", "position")])
        self.program["frame"] = 0
        self.program["labels"] = 1
        self.program["texel"] = (1.0 / w, 1.0 / h)
        self._key = None

    def draw(self, frame: Frame, overlays: list[tuple[Mask, tuple[int, int, int]]], key: object,
             shown: tuple[int, int] | None = None, full: tuple[int, int] | None = None) -> int:
        """Composite (only when ``key`` or the shown size changed) and return the output
        texture's GL name. ``shown`` is the on-screen size in pixels; ``full`` the footage's
        size when ``frame`` is a smaller stand-in for it (a proxy frame)."""
        import cv2
        import moderngl

        fw, fh = full or (frame.shape[1], frame.shape[0])
        size = (fw, fh)
        if shown is not None and shown[0] < fw and shown[1] < fh:
            size = (max(1, int(shown[0])), max(1, int(shown[1])))
        if size != self.size:
            self._build(size)
        if (key, size) == self._key:
            return self.output.glo
        self._key = (key, size)
        labels = label_map(overlays, (fh, fw))
        picture = np.ascontiguousarray(frame[..., :3])
        if (picture.shape[1], picture.shape[0]) != size:
            shrink = picture.shape[1] > size[0]
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if size != (fw, fh):
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        self.frame_tex.write(picture.tobytes())
        self.label_tex.write(np.ascontiguousarray(labels).tobytes())
        colours = [tuple(c / 255 for c in colour) for _, colour in overlays[:MAX_OBJECTS]]
        colours += [(0.0, 0.0, 0.0)] * (MAX_OBJECTS - len(colours))
        self.program["colours"].write(np.array(colours, np.float32).tobytes())
        self.program["fill"] = self.fill
        self.fbo.use()
        self.ctx.viewport = (0, 0, *size)  # type: ignore[attr-defined]
        self.frame_tex.use(0)
        self.label_tex.use(1)
        self.vao.render(moderngl.TRIANGLE_STRIP)
        self.ctx.screen.use()  # type: ignore[attr-defined]
        return self.output.glo

    def invalidate(self) -> None:
        """Draw again on the next call (settings such as ``fill`` changed)."""
        self._key = None

    def set_zoom_filter(self, zoom: float) -> None:
        """Nearest-neighbour from 100 % up (pixel-exact), linear when shrunk."""
        import moderngl

        if self.size is not None:
            f = moderngl.NEAREST if zoom >= 1 else moderngl.LINEAR
            self.output.filter = (f, f)

    def release(self) -> None:
        if self.size is None:
            return
        for thing in (self.vao, self.program, self.fbo, self.output, self.frame_tex, self.label_tex):
            thing.release()
        self.size = None
