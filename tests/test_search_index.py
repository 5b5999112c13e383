"""Semantic search: a tiny random-weight CLIP built offline, our preprocessing checked against
transformers' own CLIP processor, the LanceDB index with hand-made vectors (exact order, scores,
one hit per shot, the ANN path), and indexing synthetic videos end to end: skipping unchanged
files, re-indexing changed ones, resuming an interrupted run, finding a frame by itself."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lancedb")

from kinema.app.index_jobs import (  # noqa: E402
    chunk_shots,
    classify,
    decode_size,
    find_videos,
    index_videos,
    sample_indices,
    search,
)
from kinema.core.errors import InvalidArgumentError  # noqa: E402
from kinema.core.jobs import Progress  # noqa: E402
from kinema.media import open_video  # noqa: E402
from kinema.media.image import write_image  # noqa: E402
from kinema.media.synth import write_clip  # noqa: E402
from kinema.models.tiny import build_tiny  # noqa: E402
from kinema.models.tiny_clip import IMAGE_MEAN, IMAGE_STD, tiny_vocab  # noqa: E402
from kinema.search.embed import ClipEmbedder, ClipPreprocessing, preprocess  # noqa: E402
from kinema.search.index import Hit, Index  # noqa: E402

SIZE = (192, 144)  # short side under 224: frames are embedded as decoded, so a frame finds itself


def _smooth_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 4, (height, width, 3))
    frame = np.stack([xx * 255 / width, yy * 255 / height, 128 + 90 * np.sin((xx + 2 * yy) / 17)], -1) + noise
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("clip", tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture(scope="module")
def embedder(tiny_dir: Path) -> ClipEmbedder:
    return ClipEmbedder(tiny_dir, device="cpu")


class Counting:
    """An embedder that counts the frames it is asked to embed, and can fail on a given video."""

    def __init__(self, inner: ClipEmbedder, fail_after: int | None = None) -> None:
        self.inner, self.dim, self.model_id = inner, inner.dim, inner.model_id
        self.model_dir = inner.model_dir
        self.calls = 0
        self.frames = 0
        self.videos = 0
        self.fail_after = fail_after
        self.logit_scale = inner.logit_scale

    def images(self, frames):
        self.calls += 1
        self.frames += len(frames)
        return self.inner.images(frames)

    def texts(self, texts):
        return self.inner.texts(texts)


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def _row(vector, video="/v/a.mp4", shot=(0, 10), frame=0, key="k1"):
    return {"vector": np.asarray(vector, np.float32), "video": video, "video_key": key,
            "shot_start": shot[0], "shot_end": shot[1], "start": shot[0] / 25, "end": shot[1] / 25,
            "frame": frame, "time": frame / 25, "thumbnail": b"\x89PNG"}


# -- the tiny model ------------------------------------------------------------------------


def test_tiny_clip_loads_offline(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("A photo of the dog, riding!")["input_ids"])
    assert tokens == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "the</w>", "dog</w>", ",</w>",
                      "riding</w>", "!</w>", "<|endoftext|>"]
    # Unknown words fall apart into byte-level pieces, never into the end token the text model pools at.
    odd = tokenizer("zebra é")["input_ids"]
    assert odd.count(tokenizer.eos_token_id) == 1 and odd[-1] == tokenizer.eos_token_id
    vocab, merges = tiny_vocab()
    assert model.config.text_config.vocab_size == len(vocab)
    assert model.config.text_config.eos_token_id == vocab["<|endoftext|>"]
    assert json.loads((tiny_dir / "vocab.json").read_text()) == vocab
    assert (tiny_dir / "merges.txt").read_text().splitlines()[1:] == merges
    prep = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    assert prep["size"] == {"shortest_edge": 224} and prep["crop_size"] == {"height": 224, "width": 224}
    assert prep["image_mean"] == list(IMAGE_MEAN) and prep["image_std"] == list(IMAGE_STD)
    assert sum(f.stat().st_size for f in tiny_dir.iterdir()) < 2_000_000


@pytest.mark.parametrize("shape", [(240, 320), (320, 240), (144, 192), (224, 300), (1080, 1920), (225, 225)])
def test_preprocessing_matches_transformers(tiny_dir: Path, shape: tuple[int, int]) -> None:
    pytest.importorskip("PIL")
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    reference = CLIPImageProcessorPil.from_pretrained(tiny_dir)
    frame = _smooth_frame(*shape, seed=shape[0])
    ours = preprocess([frame], ClipPreprocessing.from_model_dir(tiny_dir)).numpy()
    theirs = reference(frame, return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape == (1, 3, 224, 224)
    # PIL resamples in 8-bit fixed point, we in float: at most about one grey level apart.
    assert np.abs(ours - theirs).mean() < 0.01
    assert np.abs(ours - theirs).max() < 0.06


def test_preprocessing_reads_old_and_square_configs(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": 32, "crop_size": 24, "image_mean": 0.5, "image_std": [0.5, 0.5, 0.5]}))
    prep = ClipPreprocessing.from_model_dir(tmp_path)
    assert (prep.shortest_edge, prep.crop, prep.mean) == (32, (24, 24), (0.5, 0.5, 0.5))
    assert prep.resized_shape(60, 90) == (32, 48) and prep.resized_shape(90, 60) == (48, 32)
    mixed = preprocess([_smooth_frame(60, 90), _smooth_frame(20, 20), np.zeros((8, 8), np.uint8)], prep)
    assert mixed.shape == (3, 3, 24, 24)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 16, "width": 20},
                                                                   "do_center_crop": False}))
    square = ClipPreprocessing.from_model_dir(tmp_path)
    assert preprocess([_smooth_frame(50, 70)], square).shape == (1, 3, 16, 20)


def test_embeddings_are_unit_vectors_and_deterministic(embedder: ClipEmbedder, tiny_dir: Path) -> None:
    frames = [_smooth_frame(144, 192, seed=i) for i in range(5)] + [_smooth_frame(300, 200, seed=9)]
    vectors = embedder.images(frames)
    assert vectors.shape == (6, embedder.dim) == (6, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Same inputs, same vectors, to rounding: CPUs differ in the last bits of a batched matmul.
    np.testing.assert_allclose(embedder.images(frames), vectors, atol=1e-6)
    np.testing.assert_allclose(embedder.images(frames[2:3])[0], vectors[2], atol=1e-5)  # batching
    assert np.all(vectors @ vectors.T < 1 - 1e-6 + np.eye(6))  # different pictures, different vectors
    small = ClipEmbedder(tiny_dir, device="cpu", batch_size=2)
    np.testing.assert_allclose(small.images(frames), vectors, atol=1e-5)
    words = embedder.texts(["a photo of a dog", "a photo of a car", "a photo of a dog"])
    assert words.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(words, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(words[0], words[2], atol=1e-6)
    assert words[0] @ words[1] < 0.9999
    assert embedder.images([]).shape == (0, 32) and embedder.texts([]).shape == (0, 32)
    assert embedder.model_id.startswith("tiny@") and embedder.model_id == small.model_id
    with pytest.raises(InvalidArgumentError):
        embedder.images([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(InvalidArgumentError):
        embedder.texts("one string")


# -- the index -----------------------------------------------------------------------------


def test_index_rows(tmp_path: Path) -> None:
    index = Index(tmp_path / "db")
    assert (index.count(), index.dim, index.has("/v/a.mp4", "k1")) == (0, None, False)
    assert index.search(_unit(1, 0)) == []
    odd = "/v/it's \"odd\".mp4"
    assert index.add([_row(_unit(1, 0)), _row(_unit(0, 1), frame=5), _row(_unit(1, 1), video=odd)]) == 3
    assert (index.count(), index.dim) == (3, 2)
    assert index.has("/v/a.mp4", "k1") and index.has(odd, "k1")
    assert not index.has("/v/a.mp4", "k2") and not index.has("/v/b.mp4", "k1")
    assert index.videos() == {"/v/a.mp4": "k1", odd: "k1"}
    index.remove(odd)
    assert index.count() == 2 and not index.has(odd, "k1")
    with pytest.raises(InvalidArgumentError, match="dimensions"):
        index.add([_row(_unit(1, 0, 0))])
    with pytest.raises(InvalidArgumentError, match="lack"):
        index.add([{"vector": _unit(1, 0)}])
    with pytest.raises(InvalidArgumentError, match="dimensions"):
        index.search(_unit(1, 0, 0))
    index.set_meta(model_id="m1")
    reopened = Index(tmp_path / "db")
    assert (reopened.count(), reopened.dim, reopened.meta) == (2, 2, {"model_id": "m1"})


def test_search_order_and_scores(tmp_path: Path) -> None:
    index = Index(tmp_path / "db")
    angles = {"/v/a.mp4": 0.0, "/v/b.mp4": 0.6, "/v/c.mp4": 1.2, "/v/d.mp4": 2.0, "/v/e.mp4": 3.0}
    index.add([_row([np.cos(a), np.sin(a), 0.0], video=v) for v, a in angles.items()])
    hits = index.search(np.array([1.0, 0.0, 0.0]), top=4)
    assert [h.video for h in hits] == ["/v/a.mp4", "/v/b.mp4", "/v/c.mp4", "/v/d.mp4"]
    np.testing.assert_allclose([h.score for h in hits], np.cos([0.0, 0.6, 1.2, 2.0]), atol=1e-5)
    assert isinstance(hits[0], Hit) and hits[0].thumbnail == b"\x89PNG" and hits[0].shot_end == 10
    # The query need not be unit length; the scores are cosines all the same.
    np.testing.assert_allclose([h.score for h in index.search(np.array([5.0, 0.0, 0.0]), top=10)],
                               np.cos([0.0, 0.6, 1.2, 2.0, 3.0]), atol=1e-5)
    with pytest.raises(InvalidArgumentError):
        index.search(np.zeros(3), top=1)
    with pytest.raises(InvalidArgumentError):
        index.search(np.ones(3), top=0)


def test_search_gives_each_shot_once_with_its_best_frame(tmp_path: Path) -> None:
    index = Index(tmp_path / "db")
    # 40 frames of shot A all close to the query, the best one frame 17; shot B and C further off.
    angles = 0.1 + 0.001 * np.abs(np.arange(40) - 17)
    rows = [_row([np.cos(a), np.sin(a), 0], shot=(0, 40), frame=i) for i, a in enumerate(angles)]
    rows += [_row([np.cos(0.5), np.sin(0.5), 0], shot=(40, 50), frame=45),
             _row([np.cos(0.4), 0, np.sin(0.4)], shot=(40, 50), frame=41),
             _row([np.cos(0.9), np.sin(0.9), 0], video="/v/b.mp4", shot=(0, 40), frame=3)]
    index.add(rows)
    hits = index.search(_unit(1, 0, 0), top=3)
    assert [(h.video, h.shot_start, h.frame) for h in hits] == [("/v/a.mp4", 0, 17), ("/v/a.mp4", 40, 41),
                                                                ("/v/b.mp4", 0, 3)]
    np.testing.assert_allclose([h.score for h in hits], np.cos([0.1, 0.4, 0.9]), atol=1e-5)
    assert [(h.start, h.end) for h in hits[:2]] == [(0.0, 1.6), (1.6, 2.0)]


def test_vector_index_for_large_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32))
    vectors = centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = Index(tmp_path / "db", ann_min_rows=2000)
    index.add({"vector": vectors[:1000], "video": [f"/v/{i // 10}.mp4" for i in range(1000)],
               "video_key": ["k"] * 1000, "shot_start": list(range(1000)), "shot_end": list(range(1, 1001)),
               "start": [0.0] * 1000, "end": [1.0] * 1000, "frame": list(range(1000)), "time": [0.0] * 1000,
               "thumbnail": [b""] * 1000})
    assert not index.has_vector_index()
    index.add([_row(v, video=f"/v/{1000 + i}.mp4", frame=1000 + i) for i, v in enumerate(vectors[1000:])])
    assert index.has_vector_index() and index.count() == 3000
    for i in (5, 1500, 2999):
        top = index.search(vectors[i], top=5)
        assert top[0].frame == i and top[0].score == pytest.approx(1.0, abs=1e-4)
        exact = np.sort(vectors @ vectors[i])[::-1]
        assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
        assert top[-1].score >= exact[9] - 1e-4  # re-ranked: true cosines among the true neighbours
    index.optimize()
    assert index.has_vector_index() and index.count() == 3000
    assert Index(tmp_path / "db").has_vector_index()


# -- indexing videos -----------------------------------------------------------------------


def indexed(*args, **kwargs) -> tuple[list[Progress], list[tuple[int, int]], list[tuple[str, str]]]:
    """``index_videos``' events, as ``(done, total)``, and its messages as ``(video, what)``."""
    events = list(index_videos(*args, **kwargs))
    heard = [tuple(p.message.split(": ", 1)) for p in events if p.message]
    return events, [(p.done, p.total) for p in events], heard


@pytest.fixture
def footage(tmp_path: Path) -> Path:
    folder = tmp_path / "footage"
    (folder / "day2").mkdir(parents=True)
    write_clip(folder / "a.mp4", 60, size=SIZE, fps=25)
    write_clip(folder / "day2" / "b.mov", 40, size=SIZE, fps=25, gop=10)
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_helpers(footage: Path, tmp_path: Path) -> None:
    assert find_videos([footage]) == [(footage / "a.mp4").resolve(), (footage / "day2" / "b.mov").resolve()]
    assert find_videos([footage / "a.mp4", footage]) == find_videos([footage])
    with pytest.raises(InvalidArgumentError):
        find_videos([tmp_path / "missing"])
    assert chunk_shots(60, 25) == [(0, 50), (50, 60)] and chunk_shots(3, 30000 / 1001) == [(0, 3)]
    assert sample_indices(0, 50, 3) == [8, 24, 40] and sample_indices(50, 52, 3) == [50, 51]
    assert decode_size(*SIZE) is None and decode_size(1920, 1080) == (398, 224)
    assert decode_size(1080, 1920) == (224, 398)


def test_index_search_and_reindex(footage: Path, tmp_path: Path, embedder: ClipEmbedder) -> None:
    db = tmp_path / "db"
    counting = Counting(embedder)
    events, steps, heard = indexed([footage], db, model=counting)
    assert [p.done for p in events if p.checkpoint] == [60, 100]  # each video once stored
    assert steps[0] == (0, 100) and steps[-1] == (100, 100)  # frames, over both videos (60 + 40)
    assert (60, 100) in steps and len(steps) > 3  # each video, and batches inside them
    assert all(total == 100 for _, total in steps) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    assert heard == [("a.mp4", "indexed 6 frames"), ("b.mov", "indexed 3 frames")]
    index = Index(db)
    assert index.count() == 9 and counting.frames == 9
    assert index.meta["model_id"] == embedder.model_id

    # An exact frame the index sampled finds its own shot first, with a cosine of 1.
    with open_video(footage / "a.mp4") as reader:
        write_image(tmp_path / "query.png", reader[54])  # sampled: 51, 54, 57
    hits = search(db, image=tmp_path / "query.png", top=3, model=embedder)
    best = hits[0]
    assert (Path(best.video).name, best.shot_start, best.shot_end, best.frame) == ("a.mp4", 50, 60, 54)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].start == 2.0 and hits[0].end == pytest.approx(2.4) and hits[0].time == pytest.approx(2.16)
    assert len(hits) == 3 and len({(h.video, h.shot_start) for h in hits}) == 3
    assert hits[0].thumbnail.startswith(b"\x89PNG")
    # Words search too; without a model the one that built the index (recorded) is used.
    words = search(db, query="a photo of a dog", top=10)
    assert len(words) == 3 and [h.score for h in words] == sorted((h.score for h in words), reverse=True)
    both = search(db, query="a dog", image=tmp_path / "query.png", top=1, model=embedder)
    assert len(both) == 1

    # Nothing changed: nothing is decoded or embedded again.
    again = Counting(embedder)
    _, steps, heard = indexed([footage], db, model=again)
    assert steps == [(0, 0)] * 3  # the start, then one message a video
    assert (again.calls, Index(db).count()) == (0, 9)
    assert heard == [("a.mp4", "unchanged"), ("b.mov", "unchanged")]

    # A changed file is re-indexed, replacing its old rows.
    write_clip(footage / "day2" / "b.mov", 110, size=SIZE, fps=25)
    changed = Counting(embedder)
    list(index_videos([footage], db, model=changed))
    assert changed.frames == 9  # (0, 50), (50, 100), (100, 110)
    assert Index(db).count() == 6 + 9
    hits = search(db, query="car", top=20, model=embedder)
    assert sorted((Path(h.video).name, h.shot_start) for h in hits) == [
        ("a.mp4", 0), ("a.mp4", 50), ("b.mov", 0), ("b.mov", 50), ("b.mov", 100)]


def test_interrupted_indexing_resumes(footage: Path, tmp_path: Path, embedder: ClipEmbedder) -> None:
    db = tmp_path / "db"

    class Failing(Counting):
        def images(self, frames):
            if self.frames >= 6:  # the first video (6 frames) went through: fail on the second
                raise RuntimeError("power cut")
            return super().images(frames)

    with pytest.raises(RuntimeError, match="power cut"):
        list(index_videos([footage], db, model=Failing(embedder)))
    index = Index(db)
    assert index.count() == 6 and set(index.videos()) == {str((footage / "a.mp4").resolve())}

    resumed = Counting(embedder)
    _, _, heard = indexed([footage], db, model=resumed)
    assert heard == [("a.mp4", "unchanged"), ("b.mov", "indexed 3 frames")]
    assert resumed.frames == 3 and Index(db).count() == 9

    # Stopping the generator between videos leaves whole videos only, too.
    db2 = tmp_path / "db2"
    run = index_videos([footage], db2, model=Counting(embedder))
    assert next(run) == Progress(0, 100)
    while next(run).done < 60:  # through the first video (60 frames)
        pass
    run.close()
    assert Index(db2).count() == 6
    later = Counting(embedder)
    list(index_videos([footage], db2, model=later))
    assert later.frames == 3 and Index(db2).count() == 9


def test_shots_from_a_detector_and_classify(footage: Path, tmp_path: Path, embedder: ClipEmbedder) -> None:
    db = tmp_path / "db"
    asked: list[str] = []

    def shots(video: Path) -> list[tuple[int, int]]:
        asked.append(video.name)
        return [(0, 12), (12, 13), (13, 1000)]

    list(index_videos([footage / "a.mp4"], db, model=embedder, shots=shots, samples_per_shot=2))
    assert asked == ["a.mp4"]
    rows = Index(db)._table.to_arrow().to_pydict()
    assert sorted(zip(rows["shot_start"], rows["shot_end"], rows["frame"], strict=True)) == [
        (0, 12, 3), (0, 12, 9), (12, 13, 12), (13, 60, 24), (13, 60, 47)]
    assert max(rows["end"]) == pytest.approx(2.4)

    labels = ["dog", "car", "person riding a bicycle"]
    result = classify(footage / "a.mp4", labels, [(0, 25), (25, 60)], model=embedder)
    assert [(s, e) for s, e, _, _ in result] == [(0, 25), (25, 60)]
    assert all(label in labels and 1 / 3 <= score <= 1 for _, _, label, score in result)
    alone = classify(footage / "a.mp4", ["dog"], [(0, 60)], model=embedder)
    assert alone[0][2:] == ("dog", pytest.approx(1.0))
    with pytest.raises(InvalidArgumentError):
        classify(footage / "a.mp4", [], [(0, 60)], model=embedder)
    with pytest.raises(InvalidArgumentError):
        classify(footage / "a.mp4", ["dog"], [(70, 80)], model=embedder)


def test_search_errors(footage: Path, tmp_path: Path, embedder: ClipEmbedder) -> None:
    with pytest.raises(InvalidArgumentError, match="no index"):
        search(tmp_path / "nothing", query="dog", model=embedder)
    db = tmp_path / "db"
    list(index_videos([footage / "a.mp4"], db, model=embedder, samples_per_shot=1))
    with pytest.raises(InvalidArgumentError):
        search(db, model=embedder)
    with pytest.raises(InvalidArgumentError):
        search(db, query="  ", model=embedder)

    class Other(Counting):
        pass

    other = Other(embedder)
    other.model_id = "another-model@123"
    with pytest.raises(InvalidArgumentError, match="built with"):
        search(db, query="dog", model=other)
    with pytest.raises(InvalidArgumentError, match="built with"):
        list(index_videos([footage / "day2"], db, model=other))


def test_unreadable_video_is_skipped(tmp_path: Path, embedder: ClipEmbedder) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    write_clip(folder / "ok.mp4", 20, size=SIZE, fps=Fraction(30000, 1001))
    _, _, heard = indexed([folder], tmp_path / "db", model=embedder)
    assert heard[0][0] == "broken.mp4" and heard[0][1].startswith("failed:")
    assert heard[1] == ("ok.mp4", "indexed 3 frames") and Index(tmp_path / "db").count() == 3


def test_bad_videos_are_skipped_with_a_warning(tmp_path: Path, embedder: ClipEmbedder,
                                               kinema_warnings: list[str]) -> None:
    from kinema.core.errors import MediaError

    folder = tmp_path / "in"
    (folder / "deep").mkdir(parents=True)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    write_clip(folder / "dot.mkv", 5, size=(1, 1), codec="ffv1", pix_fmt="yuv444p")
    write_clip(folder / "deep" / "ok.mp4", 20, size=SIZE, fps=25)
    write_clip(folder / "odd.mp4", 20, size=SIZE, fps=25)

    def shots(video: Path) -> list[tuple[int, int]]:
        if video.name == "odd.mp4":  # a detector choking on what a file holds
            raise ZeroDivisionError("division by zero")
        return [(0, 20)]

    _, steps, heard = indexed([folder], tmp_path / "db", model=embedder, shots=shots)
    assert dict(heard)["ok.mp4"] == "indexed 3 frames" and Index(tmp_path / "db").count() == 3
    assert dict(heard)["dot.mkv"].startswith("failed: is 1x1: too small to index")
    assert dict(heard)["odd.mp4"] == "failed: cannot be read (ZeroDivisionError: division by zero)"
    assert dict(heard)["broken.mp4"].startswith("failed: not a media file")
    for name in ("broken.mp4", "dot.mkv", "odd.mp4"):
        assert sum(m.startswith(f"{folder / name}: not indexed: ") for m in kinema_warnings) == 1, name
    assert steps[-1] == (40, 40)  # the frames of the two videos that could be opened

    with pytest.raises(MediaError, match="nothing could be indexed"):
        list(index_videos([folder / "broken.mp4", folder / "dot.mkv"], tmp_path / "db2", model=embedder))
    assert not (tmp_path / "db2" / "frames.lance").exists()


def test_nothing_to_index_and_what_is_left_out(tmp_path: Path, embedder: ClipEmbedder) -> None:
    from kinema.media.proxy import ensure_proxy

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidArgumentError, match="no videos to index in .*empty"):
        list(index_videos([empty], tmp_path / "db", model=embedder))
    (tmp_path / "footage" / ".hidden").mkdir(parents=True)
    clip = write_clip(tmp_path / "footage" / "a.mp4", 10, size=SIZE, fps=25)
    ensure_proxy(clip, beside=True)  # .kinema-proxies/a.mp4.proxy.mov
    write_clip(tmp_path / "footage" / ".hidden" / "b.mp4", 10, size=SIZE, fps=25)
    write_clip(tmp_path / "footage" / "c.proxy.mov", 10, size=SIZE, fps=25)
    assert find_videos([tmp_path / "footage"]) == [clip.resolve()]
    named = tmp_path / "footage" / "c.proxy.mov"
    assert find_videos([named]) == [named.resolve()]  # named on its own, it is indexed
