"""kinema retime: a clip of a project slowed down with in-betweens, checked frame by frame.

The footage is a textured square moving over a sliding textured background, whose picture is
known at any real time, with its frame number stamped in the corner (``media.synth``'s cells).
A clip showing source frames 2-6 is slowed down twice: the render shows those frames on the
even timeline frames (by their stamps), true middles on the odd ones, everything after the
clip rippled, and the recipe in the render's provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError, ProjectError
from kinema.core.jobs import run
from kinema.document import store
from kinema.document.model import (
    AudioTrack,
    ClipItem,
    Keyframe,
    LayerMask,
    MaskTrackRef,
    MediaRef,
    Project,
    Timeline,
    VideoLayer,
)
from kinema.document.timing import TimeRange
from kinema.media.synth import _cell, decode_index, pattern_frame, tone

pytest.importorskip("cv2")

W, H, N, FPS = 128, 96, 10, 24
SIDE = 40
STAMP = 4 * _cell(W, H)  # the stamp's cells fill the STAMP x STAMP top-left corner


def _texture(seed: int, w: int, h: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.5)
    coarse = cv2.GaussianBlur(noise, (0, 0), 6)
    mix = 0.5 * (fine - fine.mean()) / fine.std() + 0.5 * (coarse - coarse.mean()) / coarse.std()
    return np.clip(128 + 45 * mix, 0, 255).astype(np.uint8)


BACKGROUND = _texture(1, W + 60, H + 60)
OBJECT = _texture(2, SIDE, SIDE)


def scene(t: float) -> np.ndarray:
    """The picture at source time ``t`` frames (any real): the background sliding 2 px, the
    square moving 4 px right and 1 px down a frame; no stamp."""
    import cv2

    shift = np.float32([[1, 0, -10 - 2 * t], [0, 1, -10 - 0.5 * t]])
    frame = cv2.warpAffine(BACKGROUND, shift, (W, H), flags=cv2.INTER_CUBIC)
    place = np.float32([[1, 0, 30 + 4 * t], [0, 1, 30 + 1 * t]])
    obj = cv2.warpAffine(OBJECT, place, (W, H), flags=cv2.INTER_CUBIC)
    inside = cv2.warpAffine(np.full((SIDE, SIDE), 255, np.uint8), place, (W, H),
                            flags=cv2.INTER_LINEAR)[..., None] / 255.0
    return np.clip(np.rint(frame * (1 - inside) + obj * inside), 0, 255).astype(np.uint8)


def stamped(i: int) -> np.ndarray:
    frame = scene(i)
    frame[:STAMP, :STAMP] = pattern_frame(i, W, H)[:STAMP, :STAMP]
    return frame


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR outside the stamp's corner."""
    keep = np.ones(a.shape[:2], bool)
    keep[:STAMP + 2, :STAMP + 2] = False
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[keep].mean()
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten stamped frames at 24 fps, ProRes 4444 (close to lossless), with a tone."""
    from kinema.media.writer import VideoWriter

    path = tmp_path_factory.mktemp("footage") / "shot.mov"
    with VideoWriter(path, FPS, (W, H), codec="prores4444",
                     audio_samples=tone(440, N / FPS)[None]) as writer:
        for i in range(N):
            writer.write(stamped(i))
    return path


def clip(item_id: str, first: int, frames: int, start: int) -> ClipItem:
    return ClipItem(id=item_id, media_id="m1", start=start,
                    source_range=TimeRange.from_frames(first, frames, FPS))


@pytest.fixture
def project(tmp_path: Path, footage: Path) -> Path:
    """Layer l1: c1 (source frames 2-6) at 0, c3 (0-2) at 5; layer l2: c5 (7-8) at 8, its opacity
    keyframed at 8 and 9; audio a1: c2 and c4, the sound of c1 and c3. 10 frames."""
    from kinema.app.project_jobs import media_facts

    folder = tmp_path / "edit.kinema"
    media = MediaRef(id="m1", path=str(footage), relative_path=os.path.relpath(footage, folder),
                     **media_facts(footage))  # type: ignore[arg-type]
    top = VideoLayer(id="l2", name="top", items=[clip("c5", 7, 2, 8)])
    top.transform.opacity.keyframes = [Keyframe(frame=8, value=1.0), Keyframe(frame=9, value=1.0)]
    tl = Timeline(rate=FPS, width=W, height=H, duration=10, video_layers=[
        VideoLayer(id="l1", name="main", items=[clip("c1", 2, 5, 0), clip("c3", 0, 3, 5)]), top],
        audio_tracks=[AudioTrack(id="a1", name="A1", items=[clip("c2", 2, 5, 0), clip("c4", 0, 3, 5)])])
    return store.create(folder, Project(name="edit", media={"m1": media}, timeline=tl))


def items(folder: Path) -> dict[str, ClipItem]:
    tl = store.load(folder).timeline
    return {i.id: i for lay in [*tl.video_layers, *tl.audio_tracks] for i in lay.items}  # type: ignore[misc]


def rendered(folder: Path, out: Path) -> list[np.ndarray]:
    from kinema.app.render_job import render
    from kinema.media.image import read_image

    run(render(folder, out, codec="png"))
    return [read_image(p)[..., :3] for p in sorted(out.glob("*.png"))]


def test_x2_shows_the_clip_frames_on_even_frames_and_true_middles_between(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.app.provenance import read_provenance
    from kinema.app.retime_jobs import retime_clip
    from kinema.generate.flow_interp import FlowInterpolator
    from kinema.media.reader import VideoReader

    read: list[int] = []
    frame_at = VideoReader.__getitem__
    monkeypatch.setattr(VideoReader, "__getitem__", lambda self, i: read.append(i) or frame_at(self, i))
    model = FlowInterpolator()
    events = []
    steps = retime_clip(project, "c1", factor=2, interpolator=model)
    while True:
        try:
            events.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    monkeypatch.undo()
    assert sorted(set(read)) == [2, 3, 4, 5, 6]  # the clip's source range, nothing else
    # progress: each of the 5 frames scanned for cuts, then each of the 10 frames written
    counted = [e.done for e in events if e.message is None]
    assert counted == list(range(1, 16)) and {e.total for e in events} == {15}
    assert result.before == 5 and result.frames == 10 and result.factor == 2
    assert result.movie.parent == project / "media" and result.movie.is_file()
    assert any("kept as it was" in (e.message or "") for e in events)

    doc = store.load(project)
    at = items(project)
    assert at["c1"].media_id == result.media_id == "m2" and at["c1"].start == 0
    assert at["c1"].source_range == TimeRange.from_frames(0, 10, FPS)
    assert doc.media["m2"].frames == 10 and doc.media["m2"].relative_path == "media/shot-c1-x2.mov"
    # ripple: everything from the clip's old end (frame 5) is 5 frames later, its sound kept
    assert {k: i.start for k, i in at.items()} == {"c1": 0, "c3": 10, "c5": 13, "c2": 0, "c4": 10}
    assert at["c2"].source_range == TimeRange.from_frames(2, 5, FPS)
    assert [k.frame for k in doc.timeline.video_layers[1].transform.opacity.keyframes] == [13, 14]
    assert doc.timeline.duration == 15 and result.duration == 15 and result.moved == 3
    recipe = doc.recipes["interpolate-m2"]
    assert doc.media["m2"].recipe_id == recipe.id
    assert (recipe.backend, recipe.factor, recipe.cut_guard) == ("flow", 2, True)
    assert recipe.source_range == TimeRange.from_frames(2, 5, FPS) and recipe.played_at == FPS
    assert [(i.id, i.sha256) for i in recipe.inputs] == [("m1", doc.media["m1"].sha256)]

    frames = rendered(project, tmp_path / "out")
    assert len(frames) == 15
    for k in range(5):  # even frames: source frames 2..6, by their stamps and their pixels
        assert decode_index(frames[2 * k]) == 2 + k
        assert psnr(frames[2 * k], scene(2 + k)) > 38
    for k in range(4):  # odd frames: the true middle, far closer to it than either neighbour
        middle, truth = frames[2 * k + 1], scene(2 + k + 0.5)
        near = max(psnr(scene(2 + k), truth), psnr(scene(3 + k), truth))
        assert psnr(middle, truth) > 30 and psnr(middle, truth) > near + 6, k
    assert decode_index(frames[9]) == 6  # the last frame is held: nothing after the clip is read
    assert psnr(frames[9], scene(6)) > 38
    assert [decode_index(f) for f in frames[10:]] == [0, 1, 2, 7, 8]  # c3 and c5, rippled
    assert model.flow_pairs == 4

    record = read_provenance(tmp_path / "out")
    assert "interpolate-m2" in [op["id"] for op in record["operations"]]
    beside = json.loads(Path(f"{result.movie}.provenance.json").read_text())
    assert beside["operations"][0]["factor"] == 2


def test_the_edit_is_one_undoable_step(project: Path) -> None:
    from kinema.app.retime_jobs import retime_clip, retime_edit
    from kinema.document.edits import History

    before = store.load(project)
    run(retime_clip(project, "c1", speed="1/3", backend="blend"))
    after = store.load(project)
    assert store.load(project).timeline.duration == 20  # 5 frames x3 = 15, 10 more
    assert [i.start for i in after.timeline.video_layers[0].items] == [0, 15]
    # the saved project is the edit applied to the one before (now project.json.bak), and undo
    # gives that back exactly
    assert json.loads((project / store.BACKUP).read_text()) == json.loads(before.model_dump_json())
    history = History(before.model_copy(deep=True))
    history.do(retime_edit("c1", after.media["m2"], after.recipes["interpolate-m2"], 3))
    assert history.project.timeline == after.timeline and history.project.media == after.media
    assert history.undo() == "Retime c1 x3"
    assert history.project == before


def test_ripple_layer_moves_only_the_clips_layer_and_none_refuses_an_overlap(project: Path) -> None:
    from kinema.app.retime_jobs import retime_clip

    saved = (project / store.DOCUMENT).read_bytes()
    with pytest.raises(InvalidArgumentError, match="would run over 'c3'"):
        run(retime_clip(project, "c1", factor=2, ripple="none", backend="blend"))
    assert (project / store.DOCUMENT).read_bytes() == saved
    assert not (project / "media").exists()  # nothing left behind

    run(retime_clip(project, "c1", factor=2, ripple="layer", audio="remove", backend="blend"))
    at = items(project)
    assert {k: i.start for k, i in at.items()} == {"c1": 0, "c3": 10, "c5": 8, "c4": 10}  # c2 gone
    doc = store.load(project)
    assert [k.frame for k in doc.timeline.video_layers[1].transform.opacity.keyframes] == [8, 9]
    assert doc.timeline.duration == 13


def test_a_clip_retimed_twice_and_a_free_name(project: Path) -> None:
    from kinema.app.retime_jobs import retime_clip

    (project / "media").mkdir()
    (project / "media" / "shot-c3-x2.mov").write_bytes(b"someone's")
    first = run(retime_clip(project, "c3", factor=2, backend="blend"))
    assert first.movie.name == "shot-c3-x2-2.mov"
    assert (project / "media" / "shot-c3-x2.mov").read_bytes() == b"someone's"
    again = run(retime_clip(project, "c3", factor=2, backend="blend"))  # 12 frames from 6
    assert again.before == 6 and again.frames == 12 and again.movie.name == "shot-c3-x2-2-c3-x2.mov"
    doc = store.load(project)
    assert doc.recipes[f"interpolate-{again.media_id}"].inputs[0].id == first.media_id


def mask_layer(folder: Path, layer_id: str) -> None:
    from kinema.document import edits

    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="t1", name="ball", media_id="m1",
                                                        frames=N, width=W, height=H)))
        pf.history.do(edits.set_layer(layer_id, mask=LayerMask(track_id="t1")))
        pf.save()


def test_a_masked_layer_is_refused_another_is_noted(project: Path) -> None:
    from kinema.app.retime_jobs import retime_clip

    mask_layer(project, "l1")
    saved = (project / store.DOCUMENT).read_bytes()
    with pytest.raises(InvalidArgumentError, match="masked by track 't1'"):
        run(retime_clip(project, "c1", factor=2, backend="blend"))
    assert (project / store.DOCUMENT).read_bytes() == saved and not (project / "media").exists()

    from kinema.document import edits

    with store.ProjectFile(project) as pf:
        pf.history.do(edits.set_layer("l1", mask=None))
        pf.history.do(edits.set_layer("l2", mask=LayerMask(track_id="t1")))
        pf.save()
    done = run(retime_clip(project, "c1", factor=2, backend="blend"))
    assert any("layer 'top' is masked by track 'ball'" in note for note in done.notes)


def test_a_failure_half_way_leaves_nothing(project: Path) -> None:
    from kinema.app.retime_jobs import retime_clip

    class Breaks:
        calls = 0

        def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
            Breaks.calls += 1
            if Breaks.calls == 3:
                raise KeyboardInterrupt
            return a

    saved = (project / store.DOCUMENT).read_bytes()
    with pytest.raises(KeyboardInterrupt):
        run(retime_clip(project, "c1", factor=2, interpolator=Breaks()))
    assert Breaks.calls == 3
    assert (project / store.DOCUMENT).read_bytes() == saved
    assert not (project / "media").exists() and not (project / store.AUTOSAVE).exists()
    assert not (project / "LOCK").exists()


def test_a_read_only_project_is_refused_before_any_work(project: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.app.retime_jobs import retime_clip

    if os.geteuid() != 0:
        project.chmod(0o555)
    else:  # root writes anywhere: ask as a user would be answered
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == project
                            and mode == os.W_OK else real(p, mode, **kw))
    try:
        with pytest.raises(ProjectError, match="is read-only"):
            run(retime_clip(project, "c1", factor=2, backend="blend"))
    finally:
        project.chmod(0o755)
    assert not (project / "media").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--clip", "c9", "--factor", "2"], "no clip 'c9' in the project; its clips: c1, c3, c5"),
    (["--clip", "c2", "--factor", "2"], "'c2' is a clip on an audio track"),
    (["--clip", "c1", "--factor", "1"], "--factor must be a whole number, 2 or more, got 1"),
    (["--clip", "c1", "--speed", "0.4"], "--speed must be 1/N"),
    (["--clip", "c1", "--speed", "fast"], "--speed is not a number"),
    (["--clip", "c1"], "give --factor or --speed"),
    (["--clip", "c1", "--factor", "2", "--speed", "0.5"], "give --factor or --speed"),
    (["--clip", "c1", "--factor", "2", "--ripple", "some"], "--ripple must be one of all, layer, none"),
    (["--clip", "c1", "--factor", "2", "--audio", "stretch"], "--audio must be one of keep, remove"),
    (["--clip", "c1", "--factor", "2", "--backend", "magic"], "unknown backend 'magic'"),
])
def test_bad_input_is_one_error_line_and_changes_nothing(project: Path, args: list[str],
                                                         message: str) -> None:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    saved = (project / store.DOCUMENT).read_bytes()
    result = CliRunner().invoke(app, ["retime", str(project), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert (project / store.DOCUMENT).read_bytes() == saved and not (project / "media").exists()


def test_the_command_says_what_it_did(project: Path) -> None:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    result = CliRunner().invoke(app, ["retime", str(project), "--clip", "c1", "--speed", "0.5",
                                      "--backend", "blend"])
    assert result.exit_code == 0, result.output
    assert "retimed c1 x2: 5 -> 10 frames of m2" in result.output
    assert "3 item(s) after it moved 5 frames later; the timeline is 15 frames" in result.output
    assert "the clip's sound (c2) is kept as it was" in result.output


def test_the_cut_guard_repeats_a_frame_at_a_hard_cut_inside_the_clip(tmp_path: Path) -> None:
    """Source frames 0-4 are the moving scene, 5-9 another shot (a still pattern): retimed x2,
    the in-between of frames 4 and 5 repeats frame 4 instead of mixing the two shots."""
    from kinema.app.project_jobs import new_project
    from kinema.app.retime_jobs import retime_clip
    from kinema.media import open_video
    from kinema.media.writer import VideoWriter

    path = tmp_path / "cut.mov"
    with VideoWriter(path, FPS, (W, H), codec="prores4444") as writer:
        for i in range(N):
            writer.write(stamped(i) if i < 5 else pattern_frame(i, W, H, moving=False))
    guarded = run(retime_clip(new_project(tmp_path / "a", path), "c1", factor=2, backend="blend"))
    assert guarded.cuts == (5,) and guarded.held == 1
    plain = run(retime_clip(new_project(tmp_path / "b", path), "c1", factor=2, backend="blend",
                            cut_guard=False))
    assert plain.cuts == () and plain.held == 0
    with open_video(guarded.movie) as a, open_video(plain.movie) as b:
        assert len(a) == len(b) == 2 * N
        assert decode_index(a[9]) == 4 and psnr(a[9], scene(4)) > 38  # frame 4 again
        assert psnr(b[9], scene(4)) < 30  # a mix of the two shots
        for j in range(0, 2 * N, 2):
            assert decode_index(a[j]) == decode_index(b[j]) == j // 2


def test_a_variable_rate_clip_is_slowed_by_its_frames_real_times(tmp_path: Path) -> None:
    """Footage whose frames last 40, 80 or 120 ms, slowed x2 from 0.2 s on: retimed frame ``j``
    shows the footage ``j / (2 * rate)`` seconds into the range; where a source frame begins
    then, it is that frame, exactly, and where one is held, an in-between towards the next."""
    from fractions import Fraction

    from kinema.app.evaluate import FrameEvaluator
    from kinema.app.project_jobs import new_project
    from kinema.app.retime_jobs import retime_clip
    from kinema.document import edits
    from kinema.media.synth import write_clip

    steps = [40, 40, 80, 40, 120, 40, 40, 80, 40, 40, 40, 80, 40, 40, 40]
    times = [Fraction(sum(steps[:k]), 1000) for k in range(len(steps) + 1)]
    video = write_clip(tmp_path / "vfr.mkv", n=len(times), size=(96, 64), times=times, gop=4)
    folder = new_project(tmp_path / "vfr", video)
    start = Fraction(1, 5)
    rate = Fraction(25)
    with store.ProjectFile(folder) as pf:  # 12 frames at 25 fps from 0.2 s on
        trimmed = ClipItem(id="c1", media_id="m1", start=0,
                           source_range=TimeRange.from_frames(start * rate, 12, rate))

        def trim(p: Project) -> None:
            p.timeline.video_layers[0].items[0] = trimmed
            p.timeline.audio_tracks = []
            p.timeline.duration, p.timeline.rate = 12, rate

        pf.history.do(edits.Edit("trim", trim))
        pf.save()
    done = run(retime_clip(folder, "c1", factor=2, backend="blend"))
    assert done.frames == 24 and store.load(folder).timeline.duration == 24
    evaluator = FrameEvaluator(store.load(folder), folder)
    try:
        exact = {}
        for j in range(24):
            at = start + Fraction(j, 2) / rate
            if at in times:
                exact[j] = times.index(at)
                assert decode_index(evaluator.frame(j)) == exact[j], j
    finally:
        evaluator.close()
    assert len(exact) == 8, exact  # the others are in-betweens


def test_a_clip_changed_by_another_writer_meanwhile_is_not_overwritten(project: Path) -> None:
    """Someone saves the project while the frames are made (the clip moved): the retime is
    refused when it comes to the edit, and its movie deleted."""
    from kinema.app.retime_jobs import retime_clip
    from kinema.document import edits
    from kinema.generate.rife import blend

    class Meddles:
        def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
            if not (project / "moved").exists():
                (project / "moved").touch()
                with store.ProjectFile(project) as pf:
                    def move(p: Project) -> None:
                        p.timeline.video_layers[0].items[0].start = 1

                    pf.history.do(edits.Edit("move", move))
                    pf.save()
            return blend(a, b, t)

    with pytest.raises(ProjectError, match="changed while it was being retimed"):
        run(retime_clip(project, "c1", factor=2, interpolator=Meddles()))
    assert items(project)["c1"].start == 1 and items(project)["c1"].media_id == "m1"
    assert not (project / "media").exists()
