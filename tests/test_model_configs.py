"""Reading Hugging Face preprocessing configs in one place, and one error for a missing extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kinema.core.errors import MissingExtraError, ModelNotFoundError
from kinema.models.preprocessing import IMAGENET_MEAN, Normalisation, read_preprocessor_config


def write(folder: Path, config: dict) -> Path:
    (folder / "preprocessor_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_a_folder_without_the_file_gets_the_defaults(tmp_path: Path) -> None:
    config = read_preprocessor_config(tmp_path)
    assert not config.exists and config.raw == {}
    assert config.normalisation() == Normalisation()
    assert config.normalisation(mean=(0.5, 0.5, 0.5)).mean == (0.5, 0.5, 0.5)


def test_fields_are_read_and_checked(tmp_path: Path) -> None:
    config = read_preprocessor_config(write(tmp_path, {"image_mean": 0.5, "image_std": [0.2, 0.3, 0.4],
                                                      "do_rescale": False, "size": {"height": 512}}))
    norm = config.normalisation()
    assert config.exists and config.raw["size"] == {"height": 512}
    assert norm.mean == (0.5, 0.5, 0.5) and norm.std == (0.2, 0.3, 0.4) and not norm.do_rescale
    with pytest.raises(ModelNotFoundError, match="need 3 values, got 2"):
        read_preprocessor_config(write(tmp_path, {"image_std": [0.2, 0.3]})).normalisation()
    (tmp_path / "preprocessor_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="preprocessor_config.json: cannot read"):
        read_preprocessor_config(tmp_path)


def test_the_three_adapters_read_through_it(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from kinema.search.embed import ClipPreprocessing
    from kinema.vision.grounding import Preprocessing as GroundingPreprocessing
    from kinema.vision.sam2 import read_preprocessing

    (tmp_path / "config.json").write_text(json.dumps({"image_size": 256}), encoding="utf-8")
    write(tmp_path, {"image_mean": [0.1, 0.2, 0.3], "do_rescale": False, "size": {"height": 128,
                                                                                  "shortest_edge": 96}})
    sam2 = read_preprocessing(tmp_path)
    assert sam2.image_size == 128 and sam2.mean == (0.1, 0.2, 0.3) and sam2.rescale == 1.0
    assert sam2.std == (0.229, 0.224, 0.225)
    clip = ClipPreprocessing.from_model_dir(tmp_path)
    assert clip.mean == (0.1, 0.2, 0.3) and not clip.do_rescale and clip.shortest_edge == 96
    assert GroundingPreprocessing.from_model_dir(tmp_path / "nothing").mean == IMAGENET_MEAN


def test_the_search_index_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.search.index import _lancedb

    monkeypatch.setitem(sys.modules, "lancedb", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r"the search index needs the optional package 'lancedb'; "
                                                r"install it with: pip install 'kinema\[search\]'"):
        _lancedb()


def test_weight_hashes_are_read_once_until_a_file_changes(tmp_path, monkeypatch) -> None:
    import os

    from kinema.core import hashing
    from kinema.models import registry

    shard = tmp_path / "model.safetensors"
    shard.write_bytes(b"weights" * 100)
    reads = []
    real = hashing.files_sha256
    monkeypatch.setattr(hashing, "files_sha256", lambda files: reads.append(files) or real(files))
    first = registry.weights_sha256([shard])
    assert registry.weights_sha256([shard]) == first == real([shard]) and len(reads) == 1
    shard.write_bytes(b"other" * 100)
    os.utime(shard, ns=(1, 1))
    assert registry.weights_sha256([shard]) == real([shard]) != first and len(reads) == 2
