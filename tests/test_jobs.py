"""Long work in core: progress events, cancel tokens, jobs on worker threads; a cancelled render
or transcode stops at the next frame and leaves no output and no temporary files."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinema.core.errors import CancelledError
from kinema.core.jobs import CancelToken, Job, Progress, Steps, mapped, run, threaded
from kinema.media.synth import write_clip


def counting(n: int, worked: list[int], closed: list[str], gate: threading.Event | None = None
             ) -> Steps[str]:
    """``n`` units of work; the third waits for ``gate``; returns ``"done"``."""
    try:
        for i in range(1, n + 1):
            if i == 3 and gate is not None:
                gate.wait(10)
            worked.append(i)
            yield Progress(i, n, "units", checkpoint=i % 4 == 0)
        return "done"
    finally:
        closed.append("closed")


def files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def test_progress_is_a_small_immutable_event() -> None:
    event = Progress(3, 12, "frames", message="a.mp4: indexed 3 frames")
    assert event.fraction == 0.25 and Progress(0, 0).fraction == 0.0
    plain = Progress(5, 10)
    assert (plain.unit, plain.message, plain.checkpoint) == ("frames", None, False)
    with pytest.raises(AttributeError):
        event.done = 4  # type: ignore[misc]


def test_cancel_token_is_shared_between_threads() -> None:
    token = CancelToken()
    token.check()
    threading.Thread(target=token.cancel).start()
    deadline = time.monotonic() + 5
    while not token.cancelled and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(CancelledError, match="cancelled"):
        token.check()


def test_run_returns_the_result_and_stops_at_the_event_a_cancel_follows() -> None:
    worked: list[int] = []
    closed: list[str] = []
    seen: list[Progress] = []
    assert run(counting(6, worked, closed), on_progress=seen.append) == "done"
    assert [p.done for p in seen] == [1, 2, 3, 4, 5, 6] and {p.total for p in seen} == {6}
    assert closed == ["closed"]

    worked.clear()
    closed.clear()
    token = CancelToken()
    with pytest.raises(CancelledError):
        run(counting(6, worked, closed), token, lambda p: p.done == 4 and token.cancel())
    assert worked == [1, 2, 3, 4] and closed == ["closed"]  # unit 5 never began; cleanup ran


def test_mapped_changes_each_event_keeps_the_result_and_closes_the_inner_work() -> None:
    closed: list[bool] = []

    def inner() -> Steps[str]:
        try:
            for i in range(1, 4):
                yield Progress(i, 3, "steps", f"step {i}")
            return "done"
        finally:
            closed.append(True)

    events: list[Progress] = []
    outer = mapped(inner(), lambda e: Progress(e.done + 10, 13, "frames"))
    assert run(outer, on_progress=events.append) == "done"
    assert [(e.done, e.total, e.unit, e.message) for e in events] == [
        (11, 13, "frames", None), (12, 13, "frames", None), (13, 13, "frames", None)]
    # closed part-way (a cancel), the inner work unwinds too
    closed.clear()
    partway = mapped(inner(), lambda e: e)
    next(partway)
    partway.close()
    assert closed == [True]


def test_threaded_hands_events_over_raises_errors_and_stops_the_work_when_closed() -> None:
    def count_to(n: int):
        def work(emit) -> None:
            for i in range(n):
                emit("step", i)
        return work

    assert list(threaded(count_to(5))) == [("step", i) for i in range(5)]

    def broken(emit) -> None:
        emit("step", 0)
        raise ValueError("model blew up")

    events = threaded(broken)
    assert next(events) == ("step", 0)
    with pytest.raises(ValueError, match="blew up"):
        next(events)

    stopped: list[BaseException] = []

    def endless(emit) -> None:
        try:
            while True:
                emit("step", None)
        except BaseException as exc:
            stopped.append(exc)
            raise

    events = threaded(endless)
    next(events)
    events.close()  # a cancel: the work's next emit raises and its thread ends
    assert len(stopped) == 1 and isinstance(stopped[0], CancelledError)


def test_job_exposes_progress_result_and_error() -> None:
    worked: list[int] = []
    finished: list[str] = []
    job = Job("count", lambda: counting(5, worked, []), on_done=lambda: finished.append("done"))
    assert job.state == "starting" and job.fraction == 0.0
    assert job.start().wait(10)
    assert (job.result, job.progress) == ("done", Progress(5, 5, "units"))
    assert job.error is None and not job.cancelled
    assert job.state == "done" and job.fraction == 1.0 and finished == ["done"] and job.kept == 4

    def failing() -> Iterator[Progress]:
        yield Progress(1, 2)
        raise ValueError("no such thing")

    job = Job("fail", failing).start()
    assert job.wait(10) and job.error == "ValueError: no such thing" and job.state == "failed"


def test_a_cancelled_job_stops_at_the_next_event() -> None:
    worked: list[int] = []
    closed: list[str] = []
    gate = threading.Event()
    finished: list[str] = []
    job = Job("count", lambda: counting(10, worked, closed, gate),
              on_done=lambda: finished.append("done")).start()
    deadline = time.monotonic() + 10
    while (job.progress is None or job.progress.done < 2) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert job.state == "2/10 units"
    job.cancel()  # while unit 3 is being worked on: it is the last
    gate.set()
    assert job.wait(10) and job.cancelled and job.error is None and job.result is None
    assert worked == [1, 2, 3] and closed == ["closed"] and finished == []
    assert job.progress == Progress(3, 10, "units") and job.state == "cancelled"


def cancel_at(monkeypatch: pytest.MonkeyPatch, frame: int) -> list[Job]:
    """Make the ``frame``-th frame any writer writes cancel the (one) job in the list returned."""
    from kinema.media.writer import VideoWriter

    write = VideoWriter.write
    jobs: list[Job] = []
    written = [0]

    def counted(self, *args, **kwargs):
        write(self, *args, **kwargs)
        written[0] += 1
        if written[0] == frame:
            jobs[0].cancel()

    monkeypatch.setattr(VideoWriter, "write", counted)
    return jobs


def test_a_cancelled_transcode_leaves_no_output_and_no_temp_files(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.app.media_jobs import transcode

    src = write_clip(tmp_path / "src.mp4", n=40, size=(64, 48))
    before = files(tmp_path)
    jobs = cancel_at(monkeypatch, 17)
    jobs.append(Job("transcode", lambda: transcode(src, tmp_path / "out.mov")))
    assert jobs[0].start().wait(60) and jobs[0].cancelled
    assert jobs[0].progress == Progress(17, 40)  # the frame being written when cancelled was the last
    assert files(tmp_path) == before


@pytest.mark.parametrize("stop, kept", [(5, set()), (13, {"part_00000.mp4", "render.json"})])
def test_a_cancelled_render_leaves_no_output_and_no_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: int, kept: set[str]) -> None:
    """Cancelled in its first chunk a render leaves nothing; later, only its finished chunks
    (whole files, for ``--resume``) in the work folder."""
    from kinema.app.project_jobs import new_project
    from kinema.app.render_job import render, work_folder

    folder = new_project(tmp_path / "shot", write_clip(tmp_path / "shot.mp4", n=40, size=(64, 48)))
    out = tmp_path / "out.mp4"
    before = files(tmp_path)
    jobs = cancel_at(monkeypatch, stop)
    jobs.append(Job("render", lambda: render(folder, out, chunk_frames=8)))
    assert jobs[0].start().wait(60) and jobs[0].cancelled and jobs[0].error is None
    assert jobs[0].progress == Progress(stop, 40)
    work = work_folder(out).relative_to(tmp_path)
    assert files(tmp_path) - before == ({work} | {work / name for name in kept} if kept else set())
    assert jobs[0].kept == (8 if kept else 0)
    assert jobs[0].state == ("cancelled, 8 frames kept" if kept else "cancelled")


def test_the_cli_shows_the_same_events(capsys: pytest.CaptureFixture[str]) -> None:
    from kinema.cli.console import show_progress

    def steps() -> Steps[int]:
        yield Progress(0, 2, message="a.mp4: unchanged")
        yield Progress(2, 2, message="b.mp4: indexed 2 frames", checkpoint=True)
        return 7

    assert show_progress(steps(), "index") == 7
    assert capsys.readouterr().out.splitlines() == ["a.mp4: unchanged", "b.mp4: indexed 2 frames"]

    def failing() -> Steps[None]:
        yield Progress(0, 1, message="a.mp4: failed: damaged")
        raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        show_progress(failing(), "index")
    assert capsys.readouterr().out.splitlines() == ["a.mp4: failed: damaged"]
