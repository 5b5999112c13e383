"""The one place kinema touches transformers' SAM 2 internals (``Sam2VideoInferenceSession``'s
state, the modules ``Sam2Model`` is made of). Tested against :data:`TRANSFORMERS_VERSIONS`; a
new transformers outside it needs this module checked (``tests/test_sam2_session.py``).

:class:`Sam2Session` streams a video one frame at a time into a session that holds no frames,
and keeps the session's memory bounded: the outputs of prompted frames (few) stay, the outputs
of tracked frames are dropped once they fall out of the model's window, and the large per-frame
tensors the model never reads again are dropped at once. :func:`image_model` is a ``Sam2Model``
made of a ``Sam2VideoModel``'s own modules, so one set of weights serves both.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from kinema.models.device import import_torch

if TYPE_CHECKING:
    import torch

# The transformers versions this module is written for: (lowest, first one not supported).
TRANSFORMERS_VERSIONS = ("5.20", "6.0")
_POINTER_KEYS = ("object_pointer", "object_score_logits")  # what a frame beyond the memory reach keeps
_PER_OBJECT = ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj")


def supports(version: str) -> bool:
    """Whether transformers ``version`` is inside :data:`TRANSFORMERS_VERSIONS`."""
    from packaging.version import Version

    low, high = (Version(v) for v in TRANSFORMERS_VERSIONS)
    return low <= Version(Version(version).base_version) < high


def image_model(video_model: Any) -> Any:
    """A ``Sam2Model`` for masks on one frame that shares every weight of ``video_model`` (a
    ``Sam2VideoModel``): its modules are the video model's, no tensor is copied."""
    import transformers

    torch = import_torch()
    with torch.device("meta"):  # built empty: every module is replaced below
        view = transformers.Sam2Model(transformers.Sam2Config(**video_model.config.to_dict()))
    for name, _ in list(view.named_children()) + list(view.named_parameters(recurse=False)):
        setattr(view, name, getattr(video_model, name))
    return view.eval()


@cache
def _session_class() -> type:
    """``Sam2VideoInferenceSession`` for a video streamed from a FrameSource: it holds no
    frames, but knows how many the video has (the model sizes its object-pointer window on it)."""
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    class StreamedSession(Sam2VideoInferenceSession):
        def __init__(self, total_frames: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.total_frames = total_frames

        @property
        def num_frames(self) -> int:
            return self.total_frames

    return StreamedSession


class Sam2Session:
    """A ``Sam2VideoModel``'s inference session over a video of ``num_frames`` frames, fed one
    frame at a time; ``offload_state`` keeps the memory bank in CPU memory."""

    def __init__(self, model: Any, num_frames: int, *, device: torch.device, dtype: torch.dtype,
                 offload_state: bool = True) -> None:
        self.model = model
        self.state = _session_class()(
            total_frames=num_frames, inference_device=device,
            inference_state_device="cpu" if offload_state else device,
            video_storage_device=device, dtype=dtype, max_vision_features_cache_size=1)
        self.state.cache.inference_state_device = device  # one frame's features: keep them close

    @property
    def object_ids(self) -> list[int]:
        """The ids of the objects in the session, in the order they were added."""
        return list(self.state.obj_ids)

    def set_video_size(self, height: int, width: int) -> None:
        """The size of the video's frames (masks come back at this size)."""
        self.state.video_height, self.state.video_width = height, width

    def prompt(self, obj_id: int, index: int, *, points: tuple[Any, Any] | None = None,
               mask: Any = None, correction: bool = False, reverse: bool = False) -> None:
        """Give object ``obj_id`` on frame ``index`` either ``points`` (coordinates and labels,
        box corners first) or a 0/1 ``mask``; :meth:`step` on that frame then uses it. A
        ``correction`` runs with the object's memory but without the frame's earlier result."""
        state = self.state
        obj_idx = state.obj_id_to_idx(obj_id)
        if correction:
            outputs = state.output_dict_per_obj[obj_idx]
            outputs["cond_frame_outputs"].pop(index, None)
            outputs["non_cond_frame_outputs"].pop(index, None)
            state.frames_tracked_per_obj[obj_idx] = {index: {"reverse": reverse}}
        if mask is not None:
            state.add_mask_inputs(obj_idx, index, mask)
            state.remove_point_inputs(obj_idx, index)
        else:
            coords, labels = points  # type: ignore[misc]
            state.add_point_inputs(obj_idx, index, {"point_coords": coords, "point_labels": labels})
            state.remove_mask_inputs(obj_idx, index)
        state.obj_with_new_inputs = [obj_id]

    def step(self, index: int, pixels: torch.Tensor | None, *,
             reverse: bool) -> tuple[list[int], torch.Tensor, set[int]]:
        """Run the model on frame ``index`` for every object (``pixels`` ``None``: the session
        already holds that frame's features). Returns the object ids, their low-resolution mask
        logits ``(N, s, s)`` and the ids for which the frame counts as tracked, not prompted."""
        state = self.state
        if pixels is not None:
            state.add_new_frame(pixels, index)
        out = self.model(inference_session=state, frame_idx=index, reverse=reverse)
        state.processed_frames = None  # the features are cached: the pixels are not needed again
        state.obj_with_new_inputs = []
        tracked = set()
        for obj_idx, obj_id in enumerate(out.object_ids):
            state.frames_tracked_per_obj[obj_idx] = {}  # grows by a frame each step; the caller keeps it
            state.remove_point_inputs(obj_idx, index)  # used: a later prompt brings its own
            state.remove_mask_inputs(obj_idx, index)
            if index in state.output_dict_per_obj[obj_idx]["non_cond_frame_outputs"]:
                tracked.add(obj_id)
        return list(out.object_ids), out.pred_masks[:, 0], tracked

    def prune(self, index: int, reverse: bool, *, keep: int, memory_reach: int) -> None:
        """Keep, per object, the tracked frames the model can still read when working on frame
        ``index`` in this direction (at most ``keep`` behind): full memory for the nearest, the
        object pointer only for those beyond ``memory_reach``, nothing ahead (stale from another
        pass)."""
        full = min(keep, memory_reach)
        for outputs in self.state.output_dict_per_obj.values():
            for entry in outputs["cond_frame_outputs"].values():
                entry.pop("high_res_masks", None)  # only read while encoding the frame's memory
            tracked = outputs["non_cond_frame_outputs"]
            for frame_idx in list(tracked):
                behind = frame_idx - index if reverse else index - frame_idx
                entry = tracked[frame_idx]
                if behind < 0 or behind > keep:
                    del tracked[frame_idx]
                elif behind > full:
                    if behind <= memory_reach:
                        del tracked[frame_idx]  # the model would read its spatial memory
                    else:
                        tracked[frame_idx] = {key: entry[key] for key in _POINTER_KEYS if key in entry}
                elif behind > 0 and "maskmem_features" not in entry:
                    del tracked[frame_idx]  # kept for its pointer by an earlier pass, now within reach
                else:
                    entry.pop("high_res_masks", None)
                    if behind > 0:  # the current frame's may yet become a correction's (reused)
                        entry.pop("pred_masks", None)

    def keep_correction(self, obj_id: int, index: int, reach: int) -> None:
        """Make corrected frame ``index`` a conditioning frame of ``obj_id`` and clear its
        tracked memories within ``reach`` frames (SAM 2's ``clear_non_cond_mem_around_input``)."""
        outputs = self.state.output_dict_per_obj[self.state.obj_id_to_idx(obj_id)]
        entry = outputs["non_cond_frame_outputs"].pop(index, None)
        if entry is not None:
            outputs["cond_frame_outputs"][index] = entry
        for frame_idx in list(outputs["non_cond_frame_outputs"]):
            if abs(frame_idx - index) <= reach:
                del outputs["non_cond_frame_outputs"][frame_idx]

    def forget(self, obj_id: int) -> None:
        """Remove ``obj_id`` from the session, renumbering the others."""
        state = self.state
        if obj_id not in state._obj_id_to_idx:
            return
        keep = [i for i in state.obj_ids if i != obj_id]
        old = {name: dict(getattr(state, name)) for name in _PER_OBJECT}
        old_idx = dict(state._obj_id_to_idx)
        state._obj_id_to_idx.clear()
        state._obj_idx_to_id.clear()
        for name in _PER_OBJECT:
            getattr(state, name).clear()
        for new_idx, kept in enumerate(keep):
            state._obj_id_to_idx[kept] = new_idx
            state._obj_idx_to_id[new_idx] = kept
            for name in _PER_OBJECT:
                getattr(state, name)[new_idx] = old[name][old_idx[kept]]
        state.obj_ids = keep
        state.obj_with_new_inputs = [i for i in state.obj_with_new_inputs if i != obj_id]

    def footprint(self) -> dict[str, int]:
        """What the session holds now: tracked and prompted frame outputs (all objects), frames
        of pixels, frames of cached image features, and the bytes of all their tensors."""
        state = self.state
        tracked = sum(len(d["non_cond_frame_outputs"]) for d in state.output_dict_per_obj.values())
        prompted = sum(len(d["cond_frame_outputs"]) for d in state.output_dict_per_obj.values())
        features = state.cache._vision_features
        nbytes = _tensor_bytes([state.output_dict_per_obj, features, state.processed_frames,
                                state.point_inputs_per_obj, state.mask_inputs_per_obj])
        return {"tracked_outputs": tracked, "prompted_outputs": prompted,
                "frames_held": len(state.processed_frames or {}), "features_held": len(features),
                "tensor_bytes": nbytes}


def _tensor_bytes(value: object) -> int:
    """Bytes of every tensor in nested dicts, lists and tuples."""
    torch = import_torch()
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0
