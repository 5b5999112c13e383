"""The project document: round trips, migrations, atomic saves, locks, recovery, time semantics."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from kinema.core.errors import (
    InvalidArgumentError,
    OutputExistsError,
    ProjectCorruptError,
    ProjectLockedError,
)
from kinema.document import store
from kinema.document.model import (
    SCHEMA_VERSION,
    Animated,
    Keyframe,
    MediaRef,
    Project,
    SolidItem,
    Timeline,
    VideoLayer,
)
from kinema.document.recipes import ForeignRecipe, ModelRef, RestyleRecipe, TrackRecipe
from kinema.document.timing import RationalTime, TimeRange

FIXTURES = Path(__file__).parent / "fixtures"


def sample_project() -> Project:
    rate = Fraction(30000, 1001)
    media = MediaRef(id="m1", path="/footage/a.mp4", sha256="00", size_bytes=10, rate=rate,
                     frames=100, width=64, height=48)
    layer = VideoLayer(id="l1", name="bg", items=[SolidItem(id="s1", duration=100)])
    recipe = RestyleRecipe(id="r1", model=ModelRef(model_id="sdxl"), prompt="red hot lava", seed=7,
                           steps=30, guidance=5.0, scheduler="euler", strength=0.6)
    return Project(name="demo", media={"m1": media}, recipes={"r1": recipe},
                   timeline=Timeline(rate=rate, width=64, height=48, duration=100,
                                     video_layers=[layer]))


def test_save_load_round_trip_is_exact(tmp_path: Path):
    folder = store.create(tmp_path / "demo", sample_project())
    assert folder.name == "demo.kinema"
    assert sorted(p.name for p in folder.iterdir()) == ["cache", "masks", "project.json", "renders"]
    loaded = store.load(folder)
    assert loaded == sample_project().model_copy(update={"created": loaded.created,
                                                         "recipes": loaded.recipes})
    assert loaded.timeline.rate == Fraction(30000, 1001)
    assert json.loads((folder / "project.json").read_text())["timeline"]["rate"] == "30000/1001"
    assert loaded.recipes["r1"].prompt == "red hot lava" and loaded.recipes["r1"].seed == 7


def test_v1_fixture_migrates(tmp_path: Path):
    folder = tmp_path / "old.kinema"
    folder.mkdir()
    shutil.copy(FIXTURES / "project_v1.json", folder / "project.json")
    project = store.load(folder)
    assert project.schema_version == SCHEMA_VERSION == 6
    assert project.media["m1"].rate == Fraction(30000, 1001)
    assert project.timeline.rate == Fraction(30000, 1001)
    clip = project.timeline.video_layers[0].items[0]
    assert clip.source_range.frames() == range(0, 300)


def test_v3_fixture_migrates_to_typed_recipes(tmp_path: Path):
    folder = tmp_path / "v3.kinema"
    folder.mkdir()
    shutil.copy(FIXTURES / "project_v3.json", folder / "project.json")
    project = store.load(folder)
    track = project.recipes["track-obj1"]
    assert isinstance(track, TrackRecipe)
    assert track.model_dump(mode="json") == {
        "id": "track-obj1", "operation": "track", "version": 1,
        "model": {"model_id": "facebook/sam2.1-hiera-tiny", "revision": "main", "weights_sha256": "9a0c"},
        "device": "cuda", "dtype": "float16", "seed": None,
        "inputs": [{"id": "m1", "sha256": "5e1f"}], "created": "2025-09-01T12:30:00Z",
        "backend": "sam2",
        "prompts": [
            {"frame": 0, "object": 1, "points": [[410.0, 300.5], [60.0, 70.0]], "labels": [1, 0],
             "box": None, "text": None, "mask": None},
            {"frame": 12, "object": 1, "points": [], "labels": [], "box": [100.0, 50.0, 700.0, 1000.0],
             "text": "the dancer", "mask": None},
            {"frame": 40, "object": 1, "points": [], "labels": [], "box": None, "text": None,
             "mask": {"size": [1920, 1080], "sha256": "77b3"}}],
        "detector": {"model_id": "IDEA-Research/grounding-dino-tiny", "revision": "main",
                     "weights_sha256": "d371"},
        "min_score": 0.35, "max_objects": 1,
        "start": 0, "end": 300, "reverse": False, "fill_holes": 64, "min_island": 32, "smooth": 1}
    assert [m.model_id for m in track.models()] == ["facebook/sam2.1-hiera-tiny",
                                                    "IDEA-Research/grounding-dino-tiny"]
    # an operation kinema never recorded is kept as it was
    assert project.recipes["look"] == ForeignRecipe(
        id="look", original_operation="stylize", prompt="red hot lava", seed=7,
        parameters={"strength": 0.6}, created=datetime(2025, 9, 1, 12, 40, tzinfo=timezone.utc))
    assert project.mask_tracks["obj1"].recipe_id == "track-obj1"
    # saved again, it is a v6 document that reads back the same
    with store.ProjectFile(folder) as pf:
        pf.save()
    assert json.loads((folder / "project.json").read_text())["schema_version"] == 6
    assert store.load(folder) == project


def test_newer_schema_is_refused_clearly(tmp_path: Path):
    folder = store.create(tmp_path / "p", sample_project())
    data = json.loads((folder / "project.json").read_text())
    data["schema_version"] = 99
    (folder / "project.json").write_text(json.dumps(data))
    with pytest.raises(InvalidArgumentError, match="newer kinema"):
        store.load(folder)


def test_exception_mid_save_leaves_previous_version(tmp_path: Path, monkeypatch):
    folder = store.create(tmp_path / "p", sample_project())
    before = (folder / "project.json").read_bytes()
    with store.ProjectFile(folder) as pf:
        pf.project.name = "renamed"
        real_replace = os.replace

        def failing_replace(src, dst):
            if Path(dst).name == "project.json":
                raise OSError("disk full")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            pf.save()
        monkeypatch.undo()
    assert (folder / "project.json").read_bytes() == before
    assert not [p for p in folder.iterdir() if ".partial-" in p.name]


def test_save_keeps_the_previous_version_as_backup(tmp_path: Path):
    folder = store.create(tmp_path / "p", sample_project())
    first = (folder / "project.json").read_text()
    with store.ProjectFile(folder) as pf:
        pf.project.name = "second"
        pf.save()
    assert (folder / "project.json.bak").read_text() == first
    assert store.load(folder).name == "second"


def test_lock_stops_a_second_writer(tmp_path: Path):
    folder = store.create(tmp_path / "p", sample_project())
    with store.ProjectFile(folder):
        with pytest.raises(ProjectLockedError, match="open in another kinema") as exc:
            store.ProjectFile(folder)
        assert isinstance(exc.value, PermissionError)
        assert store.load(folder).name == "demo"  # reading stays possible
    with store.ProjectFile(folder):  # released on close
        pass


def test_stale_lock_from_a_dead_process_is_taken_over(tmp_path: Path):
    import socket
    import subprocess
    import sys

    folder = store.create(tmp_path / "p", sample_project())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (folder / "LOCK").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with store.ProjectFile(folder) as pf:
        assert json.loads((folder / "LOCK").read_text())["pid"] == os.getpid()
        assert pf.project.name == "demo"


def test_corrupt_project_names_the_backup_and_keeps_it(tmp_path: Path):
    folder = store.create(tmp_path / "p", sample_project())
    with store.ProjectFile(folder) as pf:
        pf.save()
    backup = (folder / "project.json.bak").read_bytes()
    (folder / "project.json").write_text('{"schema_version": 2, "name": ')
    with pytest.raises(ProjectCorruptError, match="project.json.bak"):
        store.load(folder)
    with pytest.raises(ProjectCorruptError):
        store.ProjectFile(folder)
    assert (folder / "project.json.bak").read_bytes() == backup
    assert not (folder / "LOCK").exists()


def test_autosave_brings_back_unsaved_edits(tmp_path: Path):
    folder = store.create(tmp_path / "p", sample_project())
    pf = store.ProjectFile(folder)
    pf.project.name = "unsaved edit"
    pf.autosave()
    del pf  # a crash: no save, no close
    assert store.has_unsaved_edits(folder)
    (folder / "LOCK").unlink()
    assert store.load(folder).name == "demo"
    with store.ProjectFile(folder, unsaved="recover") as pf:
        assert pf.project.name == "unsaved edit"
        pf.save()
    assert not store.has_unsaved_edits(folder)


def test_creating_over_an_existing_project_is_refused(tmp_path: Path):
    store.create(tmp_path / "p", sample_project())
    with pytest.raises(OutputExistsError):
        store.create(tmp_path / "p.kinema", sample_project())


def test_time_ranges_are_half_open_and_exact():
    r = TimeRange.from_frames(10, 5, Fraction(24000, 1001))
    assert r.frames() == range(10, 15)
    assert r.contains(RationalTime(value=14, rate=Fraction(24000, 1001)))
    assert not r.contains(RationalTime(value=15, rate=Fraction(24000, 1001)))
    assert r.end_time_exclusive.seconds == Fraction(15 * 1001, 24000)
    assert RationalTime(value=1, rate=24).rescaled_to(48).value == 2


def test_times_are_equal_when_they_are_the_same_instant():
    one, same, later = (RationalTime(value=1, rate=24), RationalTime(value=2, rate=48),
                        RationalTime(value=3, rate=48))
    assert one == same and one <= same and one >= same
    assert one != later and one < later and later > same
    assert hash(one) == hash(same) and len({one, same, later}) == 2
    assert one != 1 / 24 and one != "1/24"
    ntsc = Fraction(30000, 1001)
    a = TimeRange.from_frames(10, 5, ntsc)
    b = TimeRange(start_time=RationalTime(value=20, rate=2 * ntsc),
                  duration=RationalTime(value=Fraction(5, 30000) * 1001, rate=1))
    assert a == b and hash(a) == hash(b) and a != TimeRange.from_frames(10, 6, ntsc)


def test_keyframes_interpolate():
    opacity = Animated(value=1.0, keyframes=[Keyframe(frame=10, value=0.0),
                                             Keyframe(frame=20, value=1.0, interpolation="hold"),
                                             Keyframe(frame=30, value=0.5)])
    assert opacity.at(0) == 0.0 and opacity.at(15) == 0.5 and opacity.at(25) == 1.0
    assert opacity.at(40) == 0.5
    pos = Animated(value=(0.0, 0.0), keyframes=[Keyframe(frame=0, value=(0.0, 0.0)),
                                                 Keyframe(frame=4, value=(8.0, -4.0))])
    assert pos.at(1) == (2.0, -1.0)


def test_every_edit_is_autosaved_and_undoable(tmp_path: Path):
    from kinema.document import edits

    folder = store.create(tmp_path / "p", sample_project())
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.set_layer("l1", name="background", visible=False))
        assert store.has_unsaved_edits(folder)
        assert store.load(folder, recover=True).timeline.video_layers[0].name == "background"
        pf.history.undo()
        assert store.load(folder, recover=True).timeline.video_layers[0].name == "bg"
        pf.history.redo()
        pf.save()
    assert store.load(folder).timeline.video_layers[0].visible is False
