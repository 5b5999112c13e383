"""Timelines through OpenTimelineIO: exact ranges and rates out and back, other editors' files in."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from kinema.app.interchange_jobs import export_timeline, import_timeline
from kinema.app.project_jobs import new_project
from kinema.core.errors import InvalidArgumentError, MissingExtraError
from kinema.document import edits, store
from kinema.document.model import (
    AssetItem,
    ClipItem,
    Keyframe,
    LayerMask,
    MaskTrackRef,
    SolidItem,
    VideoLayer,
)
from kinema.document.recipes import ModelRef, PromptRecord, SegmentRecipe
from kinema.document.timing import TimeRange
from kinema.media.synth import tone, write_clip

NTSC = Fraction(30000, 1001)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A 29.97 fps project with a trimmed clip, a solid with a keyframed, masked layer, an
    asset after a gap, two audio tracks, a mask track and a recipe."""
    video = write_clip(tmp_path / "shot.mp4", n=60, size=(64, 48), fps=NTSC, audio=tone(440, 2.1))
    asset = write_clip(tmp_path / "logo.mov", n=8, size=(64, 48), fps=NTSC)
    folder = new_project(tmp_path / "shot", video)
    with store.ProjectFile(folder) as pf:
        h, p = pf.history, pf.project
        base = p.timeline.video_layers[0]
        base.items[0] = ClipItem(id="c1", media_id="m1", start=5,
                                 source_range=TimeRange.from_frames(7, 40, NTSC))
        logo = p.media["m1"].model_copy(update={"id": "m2", "path": str(asset), "frames": 8})
        h.do(edits.add_media(logo))
        h.do(edits.add_mask_track(MaskTrackRef(id="t1", name="dog", media_id="m1", frames=60,
                                               width=64, height=48)))
        tint = VideoLayer(id="l2", name="tint", blend_mode="multiply",
                          mask=LayerMask(track_id="t1", invert=True, grow=2.0, feather=3.5),
                          items=[SolidItem(id="s1", color=(10, 20, 30, 200), start=0, duration=12),
                                 AssetItem(id="x1", media_id="m2", start=20, duration=8)])
        tint.transform.opacity.keyframes = [Keyframe(frame=0, value=0.0),
                                            Keyframe(frame=10, value=1.0, interpolation="ease")]
        h.do(edits.add_layer(tint))
        p.timeline.audio_tracks[0].gain_db = -3.0
        second = p.timeline.audio_tracks[0].model_copy(update={"id": "a2", "name": "A2",
                                                               "muted": True})
        p.timeline.audio_tracks.append(second)
        h.do(edits.add_recipe(SegmentRecipe(id="r1", backend="sam2", seed=7,
                                            model=ModelRef(model_id="facebook/sam2"),
                                            prompts=[PromptRecord(frame=0, points=[(3, 4)], labels=[1])])))
        pf.save()
    return folder


def test_otio_round_trip_restores_the_document_exactly(project: Path, tmp_path: Path):
    out = export_timeline(project, tmp_path / "edit.otio")
    back = store.load(import_timeline(out, tmp_path / "back"))
    original = store.load(project)
    assert back.timeline.model_dump() == original.timeline.model_dump()  # exact fractions, same rates
    assert back.timeline.rate == NTSC
    assert back.mask_tracks == original.mask_tracks and back.recipes == original.recipes
    for ref in original.media.values():
        twin = back.media[ref.id]
        assert (twin.path, twin.sha256, twin.rate, twin.frames) == (ref.path, ref.sha256, ref.rate,
                                                                    ref.frames)


def test_otio_file_is_what_other_tools_expect(project: Path, tmp_path: Path):
    timeline = otio.adapters.read_from_file(str(export_timeline(project, tmp_path / "e.otio")))
    video = timeline.video_tracks()
    assert [t.name for t in video] == ["shot", "tint"]  # bottom first, as in OTIO
    clip = video[0][1]  # after a 5-frame gap
    assert isinstance(video[0][0], otio.schema.Gap) and video[0][0].duration().value == 5
    assert clip.source_range.start_time.value == 7 and clip.source_range.duration.value == 40
    assert clip.source_range.start_time.rate == pytest.approx(29.97002997)
    assert clip.media_reference.target_url.startswith("file://")
    solid, gap, asset = video[1]
    assert solid.media_reference.generator_kind == "SolidColor"
    assert gap.duration().value == 8 and asset.duration().value == 8
    assert len(timeline.audio_tracks()) == 2
    assert timeline.duration().value == pytest.approx(60)  # the sound runs the whole clip


def test_fcp_xml_round_trip_keeps_ranges_and_rate(project: Path, tmp_path: Path):
    xml = export_timeline(project, tmp_path / "edit.xml")
    assert "<pathurl>" in xml.read_text()
    back = store.load(import_timeline(xml, tmp_path / "fromxml"))
    assert back.timeline.rate == NTSC
    clip = back.timeline.video_layers[0].items[0]
    assert isinstance(clip, ClipItem)
    assert (clip.start, clip.source_range) == (5, TimeRange.from_frames(7, 40, NTSC))
    assert back.media[clip.media_id].sha256 == store.load(project).media["m1"].sha256


def test_edl_round_trip_needs_the_rate(tmp_path: Path):
    video = write_clip(tmp_path / "a.mp4", n=30, size=(64, 48), fps=25)
    folder = new_project(tmp_path / "a", video)
    edl = export_timeline(folder, tmp_path / "a.edl")
    assert "00:00:00:00 00:00:01:05" in edl.read_text()
    with pytest.raises(InvalidArgumentError, match="--rate"):
        import_timeline(edl, tmp_path / "nope")
    back = store.load(import_timeline(edl, tmp_path / "b", rate=Fraction(25)))
    clip = back.timeline.video_layers[0].items[0]
    assert clip.source_range == TimeRange.from_frames(0, 30, 25)
    assert back.media[clip.media_id].frames == 30  # the file was found and probed


def test_foreign_timeline_with_missing_media_imports_and_lists_it(tmp_path: Path):
    tl = otio.schema.Timeline(name="from resolve")
    track = otio.schema.Track(name="V1")
    rate = 24.0
    ref = otio.schema.ExternalReference(
        target_url="file:///nowhere/A001.mov",
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                otio.opentime.RationalTime(500, rate)))
    track.append(otio.schema.Clip(name="A001", media_reference=ref, source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(100, rate), otio.opentime.RationalTime(48, rate))))
    tl.tracks.append(track)
    path = tmp_path / "resolve.otio"
    otio.adapters.write_to_file(tl, str(path))
    folder = import_timeline(path, tmp_path / "foreign")
    project = store.load(folder)
    clip = project.timeline.video_layers[0].items[0]
    assert clip.source_range == TimeRange.from_frames(100, 48, 24) and project.timeline.duration == 48
    listing = subprocess.run([sys.executable, "-m", "kinema", "media", str(folder)],
                             capture_output=True, text=True)
    assert listing.returncode == 1 and "missing" in listing.stdout and "A001.mov" in listing.stdout


def test_bad_timeline_files(project: Path, tmp_path: Path, monkeypatch):
    with pytest.raises(InvalidArgumentError, match="no timeline format"):
        export_timeline(project, tmp_path / "edit.aaf")
    broken = tmp_path / "broken.otio"
    broken.write_text("{ not json")
    with pytest.raises(InvalidArgumentError, match="not a readable"):
        import_timeline(broken, tmp_path / "x")
    monkeypatch.setattr(otio.adapters, "available_adapter_names", lambda: ["otio_json"])
    with pytest.raises(MissingExtraError, match="otio-cmx3600-adapter"):
        export_timeline(project, tmp_path / "edit.edl")
    existing = tmp_path / "kept.otio"
    existing.write_text("precious")
    with pytest.raises(FileExistsError):
        export_timeline(project, existing)
    assert existing.read_text() == "precious"


def test_cli_export_and_import(project: Path, tmp_path: Path):
    out = tmp_path / "cli.otio"
    run = [sys.executable, "-m", "kinema"]
    subprocess.run(run + ["export", "otio", str(project), str(out)], check=True, capture_output=True)
    assert json.loads(out.read_text())["OTIO_SCHEMA"].startswith("Timeline")
    made = subprocess.run(run + ["import", str(out), str(tmp_path / "again")], capture_output=True,
                          text=True, check=True)
    assert "again.kinema" in made.stdout
