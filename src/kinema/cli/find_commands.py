"""Find and cut commands: shots, index, search, classify, highlight, summarize, beats, beatcut."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Model = Annotated[str | None, typer.Option("--model", help="CLIP folder or model name.")]
Out = Annotated[Path | None, typer.Option("--output", "-o", help="The edit as a movie (e.g. reel.mp4).")]
Otio = Annotated[Path | None, typer.Option("--otio", help="The edit as a timeline (.otio, .edl, .xml).")]
ProjectOpt = Annotated[Path | None, typer.Option("--project", help="Keep the edit as a kinema project.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace outputs that exist.")]


def shots(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    as_json: Json = False,
) -> None:
    """Split a video into shots (hard cuts, dissolves, fades)."""
    from kinema.app.shot_jobs import find_shots
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        found = show_progress(find_shots(video), f"shots {video.name}")
    data = found.to_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    for k, shot in enumerate(data["shots"]):
        out.print(f"{k + 1:4}  frames {shot['start']:6}-{shot['end'] - 1:<6}  "
                  f"{shot['start_time']:9.3f}s-{shot['end_time']:.3f}s  {shot['transition']}")


def index(
    paths: Annotated[list[Path], typer.Argument(help="Videos or folders (searched recursively).",
                                                show_default=False)],
    db: Annotated[Path, typer.Option("--db", help="The index folder (made if missing).")],
    model: Model = None,
    samples: Annotated[int, typer.Option("--samples", help="Frames embedded per shot.")] = 3,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Embed on a Ray cluster ($KINEMA_RAY, else a local one).")] = False,
) -> None:
    """Index footage for search: shots, CLIP embeddings of sampled frames, thumbnails.

    Unchanged files are skipped, so indexing again is quick; an interrupted run keeps every
    video it finished. A file that cannot be read gets a warning and is left out; the exit
    status is non-zero only when nothing could be indexed."""
    from kinema.app.index_jobs import index_videos
    from kinema.app.shot_jobs import detect_shots
    from kinema.cli.console import exit_on_error, show_progress

    with exit_on_error():
        show_progress(index_videos(paths, db, model=model, samples_per_shot=samples, ray=ray,
                                   shots=lambda v: detect_shots(v).ranges()), "index")


def search(
    query: Annotated[str | None, typer.Argument(help="Words to look for.", show_default=False)] = None,
    db: Annotated[Path, typer.Option("--db", help="The index folder.")] = Path("kinema-index"),
    image: Annotated[Path | None, typer.Option("--image", help="A picture to look for.")] = None,
    top: Annotated[int, typer.Option("--top", help="How many shots.")] = 10,
    model: Model = None,
    as_json: Json = False,
) -> None:
    """Find shots by meaning ("a person riding a bicycle") or by a picture."""
    from kinema.app.index_jobs import search as run_search
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        hits = run_search(db, query, image, top, model)
    if as_json:
        out.print_json(json.dumps({"results": [{"video": h.video, "start": h.start, "end": h.end,
                                                "score": round(h.score, 6)} for h in hits]}))
        return
    for h in hits:
        out.print(f"{h.score:6.3f}  {h.start:8.2f}s-{h.end:.2f}s  {h.video}")


def classify(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    labels: Annotated[str, typer.Option("--labels", help='Comma-separated, e.g. "action,dialogue".')],
    model: Model = None,
    as_json: Json = False,
) -> None:
    """Label each shot with the best of the given labels (zero-shot)."""
    from kinema.app.index_jobs import classify as run_classify
    from kinema.app.shot_jobs import detect_shots
    from kinema.cli.console import exit_on_error, out
    from kinema.core.errors import InvalidArgumentError

    with exit_on_error():
        names = [name.strip() for name in labels.split(",") if name.strip()]
        if len(names) < 2:
            raise InvalidArgumentError("give at least two labels, e.g. --labels \"action,scenery\"")
        found = detect_shots(video)
        results = run_classify(video, names, found.ranges(), model)
    rows = [{"start": s, "end": e, "start_time": float(found.times[k]), "end_time": float(found.times[k + 1]),
             "label": label, "score": round(score, 6)} for k, (s, e, label, score) in enumerate(results)]
    if as_json:
        out.print_json(json.dumps({"shots": rows}))
        return
    for row in rows:
        out.print(f"{row['start_time']:9.3f}s-{row['end_time']:.3f}s  {row['label']}  ({row['score']:.3f})")


def _deliver(cuts: list, output: Path | None, otio: Path | None, project: Path | None, overwrite: bool,
             fps: Fraction, size: tuple[int, int], name: str, music: Path | None = None,
             crossfade: int = 0) -> None:
    from kinema.app.edit_jobs import EditOutput, deliver
    from kinema.cli.console import out, show_progress

    show_progress(deliver(cuts, EditOutput(output, otio, project, overwrite), fps=fps, size=size, name=name,
                          music=music, crossfade=crossfade), name)
    total = sum(c.frames for c in cuts) - crossfade * (len(cuts) - 1)
    out.print(f"{len(cuts)} cuts, {total} frames ({float(Fraction(total) / fps):.3f} s): "
              + ", ".join(str(p) for p in (output, otio, project) if p))


def highlight(
    videos: Annotated[list[Path], typer.Argument(help="Footage.", show_default=False)],
    query: Annotated[str, typer.Option("--query", "-q", help='What to keep, e.g. "exciting moments".')],
    duration: Annotated[float, typer.Option("--duration", "-d", help="Length of the reel in seconds.")],
    output: Out = None,
    otio: Otio = None,
    project: ProjectOpt = None,
    order: Annotated[str, typer.Option("--order", help="chronological or ranked.")] = "chronological",
    crossfade: Annotated[float, typer.Option(
        "--crossfade", help="Dissolve between shots over this many seconds (same-size footage).")] = 0.0,
    model: Model = None,
    overwrite: Overwrite = False,
) -> None:
    """A reel of the shots that best match the words, cut on shot boundaries, exact length."""
    from kinema.app.edit_jobs import check_crossfade, highlight_cuts, shot_pieces
    from kinema.app.index_jobs import open_embedder
    from kinema.cli.console import exit_on_error

    with exit_on_error():
        seconds = Fraction(duration).limit_denominator(1000)
        fade_seconds = Fraction(crossfade).limit_denominator(1000)
        check_crossfade(videos, fade_seconds, seconds)
        pieces, _, fps, size = shot_pieces(videos, embedder=open_embedder(model), query=query)
        fade = int(round(fade_seconds * fps))
        cuts = highlight_cuts(pieces, seconds, fps, order=order, crossfade=fade)
        _deliver(cuts, output, otio, project, overwrite, fps, size, "highlight", crossfade=fade)


def summarize(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    duration: Annotated[float, typer.Option("--duration", "-d", help="Length of the summary in seconds.")],
    output: Out = None,
    otio: Otio = None,
    project: ProjectOpt = None,
    model: Model = None,
    overwrite: Overwrite = False,
) -> None:
    """A summary: shots that are typical of the video and unlike each other, in story order."""
    from kinema.app.edit_jobs import shot_pieces, summary_cuts
    from kinema.app.index_jobs import open_embedder
    from kinema.cli.console import exit_on_error

    with exit_on_error():
        pieces, vectors, fps, size = shot_pieces([video], embedder=open_embedder(model))
        cuts = summary_cuts(pieces, vectors, Fraction(duration).limit_denominator(1000), fps)  # type: ignore[arg-type]
        _deliver(cuts, output, otio, project, overwrite, fps, size, "summary")


def beats(
    audio: Annotated[Path, typer.Argument(help="Music (any file with sound).", show_default=False)],
    as_json: Json = False,
) -> None:
    """The beats of a piece of music, in seconds, and its tempo."""
    from kinema.app.edit_jobs import song_beats
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        found, _ = song_beats(audio)
    if as_json:
        out.print_json(json.dumps(found.to_json()))
        return
    if found.tempo is None:
        out.print("no beats: the sound is silent or has no pulse")
        return
    out.print(f"tempo {found.tempo:.1f} bpm, {len(found.times)} beats")
    out.print(" ".join(f"{t:.3f}" for t in found.times))


def beatcut(
    clips: Annotated[list[Path], typer.Argument(help="Footage.", show_default=False)],
    music: Annotated[Path, typer.Option("--music", help="The song: the soundtrack and the beats.")],
    output: Out = None,
    otio: Otio = None,
    project: ProjectOpt = None,
    every: Annotated[int, typer.Option("--every", help="Cut on every Nth beat.")] = 1,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Order shots by these words.")] = None,
    model: Model = None,
    overwrite: Overwrite = False,
) -> None:
    """A music edit: shots changing exactly on the beat, the song as the soundtrack."""
    from kinema.app.edit_jobs import music_beat_cuts, shot_pieces, song_beats
    from kinema.cli.console import exit_on_error

    with exit_on_error():
        found, seconds = song_beats(music)
        embedder = None
        if query:
            from kinema.app.index_jobs import open_embedder

            embedder = open_embedder(model)
        pieces, _, fps, size = shot_pieces(clips, embedder=embedder, query=query)
        if query:
            pieces.sort(key=lambda p: -p.score)
        cuts = music_beat_cuts(list(found.times), seconds, pieces, fps, every=every)
        _deliver(cuts, output, otio, project, overwrite, fps, size, "beatcut", music=music)


def register(app: typer.Typer) -> None:
    """Add the find and cut commands to ``app``."""
    for command in (shots, index, search, classify, highlight, summarize, beats, beatcut):
        app.command()(command)
