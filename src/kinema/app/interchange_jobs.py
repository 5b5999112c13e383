"""Timelines in and out through OpenTimelineIO: .otio, and EDL / FCP 7 XML through adapters."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError
from kinema.core.extras import missing_extra
from kinema.document import store
from kinema.document.interchange import from_otio, to_otio
from kinema.document.model import MediaRef, Project

# Suffix -> (OTIO adapter, the package that provides it when it is not built in).
ADAPTERS = {
    ".otio": ("otio_json", None),
    ".edl": ("cmx_3600", "otio-cmx3600-adapter"),
    ".xml": ("fcp_xml", "otio-fcp-adapter"),
}


def _adapter(path: Path) -> str:
    import opentimelineio as otio

    entry = ADAPTERS.get(path.suffix.lower())
    if entry is None:
        raise InvalidArgumentError(f"no timeline format for '{path.suffix}' files", path=path,
                                   hint=f"use one of {', '.join(ADAPTERS)}")
    name, package = entry
    if name not in otio.adapters.available_adapter_names():
        raise missing_extra(f"writing and reading {path.suffix}", package, "interchange", path=path)
    return name


def export_timeline(project_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    overwrite: bool = False) -> Path:
    """Write the project's timeline as ``out`` (format from its extension), atomically."""
    import opentimelineio as otio

    target = Path(out)
    adapter = _adapter(target)
    atomic.check_can_write(target, overwrite)
    project = store.load(store.project_path(project_path))
    temp = atomic.temp_path_for(target)
    try:
        timeline = to_otio(project, generators=adapter == "otio_json")
        otio.adapters.write_to_file(timeline, str(temp), adapter_name=adapter)
        atomic.commit(temp, target, overwrite)
    except (otio.exceptions.OTIOError, ValueError, KeyError) as exc:
        atomic.discard(temp)
        raise InvalidArgumentError(f"the {adapter} adapter cannot hold this timeline: {exc}",
                                   path=target, hint="export .otio, which holds everything") from exc
    except BaseException:
        atomic.discard(temp)
        raise
    return target


def import_timeline(file: str | os.PathLike[str], project_path: str | os.PathLike[str], *,
                    rate: Fraction | None = None) -> Path:
    """Create the project ``project_path`` from a timeline file; footage that exists is probed
    and hashed, footage that does not is kept as missing media to relink. EDLs do not record
    their frame rate: ``rate`` gives it."""
    import opentimelineio as otio

    source = Path(file)
    if not source.is_file():
        raise InvalidArgumentError("no such timeline file", path=source)
    adapter = _adapter(source)
    folder = store.project_path(project_path)
    options: dict[str, object] = {}
    if adapter == "cmx_3600":
        if rate is None:
            raise InvalidArgumentError("EDLs do not say their frame rate", path=source,
                                       hint="pass --rate, e.g. --rate 30000/1001")
        options["rate"] = float(rate)
    try:
        result = otio.adapters.read_from_file(str(source), adapter_name=adapter, **options)
    except (otio.exceptions.OTIOError, ValueError, KeyError) as exc:
        raise InvalidArgumentError(f"not a readable {adapter} timeline: {exc}", path=source) from exc
    timeline = result if isinstance(result, otio.schema.Timeline) else next(
        iter(result.find_children(descended_from_type=otio.schema.Timeline)), None)
    if timeline is None:
        raise InvalidArgumentError("holds no timeline", path=source)
    project = from_otio(timeline, name=folder.stem, rate=rate)
    project = _complete_media(project, folder)
    return store.create(folder, project)


def _complete_media(project: Project, folder: Path) -> Project:
    """Fill in what only the files know (hash, size, picture) and paths relative to ``folder``."""
    from kinema.app.project_jobs import media_facts

    media: dict[str, MediaRef] = {}
    for ref in project.media.values():
        path = Path(ref.path)
        if path.is_file():
            update = {"relative_path": os.path.relpath(path.resolve(), folder.resolve())}
            if not ref.sha256:
                update |= media_facts(path)
            ref = ref.model_copy(update=update)
        media[ref.id] = ref
    return project.model_copy(update={"media": media})
