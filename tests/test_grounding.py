"""Text-grounded boxes: a tiny random-weight Grounding DINO built offline, our preprocessing and
post-processing checked against transformers' own processor and against hand-computed examples."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError  # noqa: E402
from kinema.models.tiny_grounding_dino import VOCAB, build_tiny_grounding_dino  # noqa: E402
from kinema.vision.base import Prompt  # noqa: E402
from kinema.vision.grounding import (  # noqa: E402
    Detection,
    Preprocessing,
    TextDetector,
    box_iou,
    boxes_to_prompts,
    cxcywh_to_xyxy,
    normalize_text,
    postprocess_grounding,
    preprocess_frame,
    resized_shape,
)

ID = {token: i for i, token in enumerate(VOCAB)}
SKIP = frozenset({ID["[PAD]"], ID["[CLS]"], ID["[SEP]"], ID["."]})


def _decode(ids: list[int]) -> str:
    return " ".join(VOCAB[i] for i in ids)


def _smooth_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    frame = np.stack([xx * 255 / width, yy * 255 / height, 128 + 100 * np.sin((xx + yy) / 9)], -1) + noise
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("gdino") / "tiny")


@pytest.fixture(scope="module")
def detector(tiny_dir: Path) -> TextDetector:
    return TextDetector(tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8)


# --- the tiny model -------------------------------------------------------------------------


def test_tiny_model_loads_with_transformers(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    model = GroundingDinoForObjectDetection.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.d_model == 32 and model.config.max_text_len == 32 and model.config.num_queries == 30
    assert model.config.backbone_config.model_type == "swin"
    assert model.config.text_config.vocab_size == len(VOCAB)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert tokenizer("The red car.")["input_ids"] == [ID["[CLS]"], ID["the"], ID["red"], ID["car"], ID["."],
                                                       ID["[SEP]"]]
    config = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    assert config["size"] == {"shortest_edge": 96, "longest_edge": 160}
    assert Preprocessing.from_model_dir(tiny_dir).mean == tuple(config["image_mean"])


def test_importing_is_cheap() -> None:
    code = ("import sys, kinema.vision.grounding, kinema.models.tiny_grounding_dino; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- detect: mechanics on the random model --------------------------------------------------


def test_detect_types_and_ranges(detector: TextDetector, frame: np.ndarray) -> None:
    found = detector.detect(frame, "person. the red car", box_threshold=0.0, max_boxes=7)
    assert len(found) == 7
    height, width = frame.shape[:2]
    for det in found:
        assert isinstance(det, Detection)
        assert isinstance(det.score, float) and 0.0 <= det.score <= 1.0
        assert isinstance(det.label, str) and det.label
        assert set(det.label.split()) <= {"person", "the", "red", "car"}
        x0, y0, x1, y1 = det.box
        assert all(isinstance(v, float) for v in det.box)
        assert 0.0 <= x0 < x1 <= width and 0.0 <= y0 < y1 <= height
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    with pytest.raises(AttributeError):
        found[0].score = 0.0  # type: ignore[misc]


def test_thresholds(detector: TextDetector, frame: np.ndarray) -> None:
    assert detector.detect(frame, "person", box_threshold=1.01) == []
    everything = detector.detect(frame, "person", box_threshold=0.0, max_boxes=30)
    assert len(everything) == 30  # every query of the tiny model
    assert len(detector.detect(frame, "person", box_threshold=0.0, max_boxes=4)) == 4
    cut = (everything[9].score + everything[10].score) / 2
    some = detector.detect(frame, "person", box_threshold=cut, max_boxes=30)
    assert some == everything[:10]


def test_detect_is_deterministic(detector: TextDetector, tiny_dir: Path, frame: np.ndarray) -> None:
    first = detector.detect(frame, "dog. cat", box_threshold=0.0)
    assert detector.detect(frame, "dog. cat", box_threshold=0.0) == first
    assert TextDetector(tiny_dir, device="cpu").detect(frame, ["Dog", "cat"], box_threshold=0.0) == first


def test_prompts_from_detect_feed_trackers(detector: TextDetector, frame: np.ndarray) -> None:
    prompts = boxes_to_prompts(detector.detect(frame, "person", box_threshold=0.0, max_boxes=5), 12)
    assert [p.object_id for p in prompts] == [1, 2, 3, 4, 5]
    assert all(p.frame == 12 and p.box is not None and p.text == "person" for p in prompts)


# --- preprocessing against transformers' processor -------------------------------------------


def test_tokenization_matches_processor(detector: TextDetector) -> None:
    from transformers import GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(),
                                       tokenizer=detector.tokenizer)
    ours = detector.encode(["Person", "the  Red car"])
    theirs = processor(text=["Person", "the Red car"])
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert ours[key].tolist() == [theirs[key]]
    direct = detector.tokenizer("person. the red car.")["input_ids"]
    assert detector.encode("Person .the red car")["input_ids"][0].tolist() == direct
    assert detector.encode("person. the red car.")["input_ids"][0].tolist() == direct


def test_normalize_text() -> None:
    assert normalize_text("Person") == "person."
    assert normalize_text("  The RED car .. person ") == "the red car. person."
    assert normalize_text(["A cat", "dog."]) == "a cat. dog."
    for empty in ("", "  ", " . .", []):
        with pytest.raises(InvalidArgumentError, match="empty"):
            normalize_text(empty)
    with pytest.raises(InvalidArgumentError):
        normalize_text(["cat", 3])  # type: ignore[list-item]


@pytest.mark.parametrize("shape", [(120, 200), (200, 90), (100, 400), (50, 60), (96, 130)])
def test_pixels_match_processor(tiny_dir: Path, shape: tuple[int, int]) -> None:
    pytest.importorskip("PIL")
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    config = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    reference = GroundingDinoImageProcessorPil(size=config["size"], image_mean=config["image_mean"],
                                               image_std=config["image_std"])
    image = _smooth_frame(*shape)
    theirs = reference(image, return_tensors="pt")
    ours = preprocess_frame(image, Preprocessing.from_model_dir(tiny_dir))
    assert ours["pixel_values"].shape == theirs["pixel_values"].shape
    assert ours["pixel_values"].dtype == torch.float32
    assert torch.equal(ours["pixel_mask"], theirs["pixel_mask"])
    # PIL rounds its resized pixels to uint8: at most one level apart (1/255/std < 0.02).
    diff = (ours["pixel_values"] - theirs["pixel_values"]).abs()
    assert diff.max().item() < 0.02 and diff.mean().item() < 0.008


def test_resized_shape_matches_transformers() -> None:
    from transformers.image_transforms import get_size_with_aspect_ratio

    size = {"shortest_edge": 800, "longest_edge": 1333}
    for height in (1, 57, 480, 720, 800, 1080, 1333, 2160, 4000):
        for width in (1, 90, 640, 800, 1280, 1920, 3840):
            expected = get_size_with_aspect_ratio((height, width), 800, 1333)
            assert resized_shape(height, width, size) == (max(1, expected[0]), max(1, expected[1]))
    assert resized_shape(480, 640, {"height": 64, "width": 32}) == (64, 32)
    assert resized_shape(480, 640, {"max_height": 100, "max_width": 100}) == (75, 100)
    with pytest.raises(InvalidArgumentError, match="unsupported image size"):
        resized_shape(480, 640, {"longest_edge": 100})


def test_preprocessing_config_fields(tmp_path: Path) -> None:
    assert Preprocessing.from_model_dir(tmp_path).size == {"shortest_edge": 800, "longest_edge": 1333}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": 512, "max_size": 640, "image_mean": 0.5, "image_std": [0.25, 0.25, 0.25]}))
    prep = Preprocessing.from_model_dir(tmp_path)
    assert prep.size == {"shortest_edge": 512, "longest_edge": 640}
    assert prep.mean == (0.5, 0.5, 0.5) and prep.std == (0.25, 0.25, 0.25)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="preprocessor config"):
        Preprocessing.from_model_dir(tmp_path)


# --- post-processing with known tensors ----------------------------------------------------

# [CLS] person . red car . [SEP], then padding columns up to max_text_len 8
IDS = [ID["[CLS]"], ID["person"], ID["."], ID["red"], ID["car"], ID["."], ID["[SEP]"]]


def _logits(rows: list[dict[int, float]], base: float = -6.0) -> np.ndarray:
    out = np.full((len(rows), 8), base)
    out[:, len(IDS):] = -np.inf
    for q, row in enumerate(rows):
        for col, value in row.items():
            out[q, col] = value
    return out


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_box_conversion_by_hand() -> None:
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.1, 0.1]])
    assert cxcywh_to_xyxy(boxes, (100, 200)).tolist() == [[80.0, 30.0, 120.0, 70.0], [40.0, 20.0, 60.0, 30.0]]
    iou = box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6]]))
    assert iou.tolist() == [[1 / 7, 0.0]]


def test_postprocess_known_outputs() -> None:
    logits = _logits([
        {1: 2.0},                   # person
        {3: 1.0, 4: 1.5},           # red car, score from "car"
        {4: -1.0},                  # score 0.269: under box_threshold
        {6: 5.0, 1: 1.0},           # [SEP] scores (as in transformers) but is never a label
        {0: 3.0, 3: 0.5},           # [CLS] likewise
        {1: 2.5},                   # box fully clipped to zero width: dropped
    ])
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5],
                      [0.05, 0.5, 0.2, 0.2], [0.9, 0.9, 0.4, 0.4], [0.3, 0.3, 0.0, 0.2]])
    found = postprocess_grounding(logits, boxes, IDS, (100, 200), decode=_decode, skip_ids=SKIP)
    assert found == [
        Detection(pytest.approx((0.0, 40.0, 30.0, 60.0)), pytest.approx(_sig(5.0)), "person"),
        Detection(pytest.approx((140.0, 70.0, 200.0, 100.0)), pytest.approx(_sig(3.0)), "red"),
        Detection(pytest.approx((80.0, 30.0, 120.0, 70.0)), pytest.approx(_sig(2.0)), "person"),
        Detection(pytest.approx((40.0, 20.0, 60.0, 30.0)), pytest.approx(_sig(1.5)), "red car"),
    ]
    top2 = postprocess_grounding(logits, boxes, IDS, (100, 200), decode=_decode, skip_ids=SKIP, max_boxes=2)
    assert top2 == found[:2]
    low = postprocess_grounding(logits, boxes, IDS, (100, 200), decode=_decode, skip_ids=SKIP,
                                box_threshold=0.2)
    assert [d.label for d in low] == ["person", "red", "person", "red car", "car"]
    assert postprocess_grounding(logits, boxes, IDS, (100, 200), decode=_decode, box_threshold=0.999) == []


def test_postprocess_text_threshold_and_fallback_label() -> None:
    logits = _logits([{3: 0.2, 4: 0.4}])  # red 0.550, car 0.599
    boxes = np.array([[0.5, 0.5, 0.5, 0.5]])

    def labels(text_threshold: float) -> list[str]:
        return [d.label for d in postprocess_grounding(logits, boxes, IDS, (10, 10), decode=_decode,
                                                       skip_ids=SKIP, box_threshold=0.3,
                                                       text_threshold=text_threshold)]

    assert labels(0.5) == ["red car"]
    assert labels(0.56) == ["car"]
    assert labels(0.7) == ["red car"]  # nothing above: the whole phrase of the best token


def test_postprocess_nms() -> None:
    logits = _logits([{1: 3.0}, {1: 2.0}, {3: 1.0}, {1: 1.0}])
    boxes = np.array([[0.5, 0.5, 0.4, 0.4], [0.52, 0.5, 0.4, 0.4], [0.5, 0.5, 0.4, 0.4],
                      [0.1, 0.1, 0.1, 0.1]])
    found = postprocess_grounding(logits, boxes, IDS, (100, 100), decode=_decode, skip_ids=SKIP,
                                  box_threshold=0.5, nms_iou=0.5)
    # the second "person" overlaps the first; "red" on the same box has another label
    assert [(d.label, d.score) for d in found] == [("person", pytest.approx(_sig(3.0))),
                                                  ("red", pytest.approx(_sig(1.0))),
                                                  ("person", pytest.approx(_sig(1.0)))]


def test_postprocess_matches_transformers(detector: TextDetector) -> None:
    from transformers import GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(),
                                       tokenizer=detector.tokenizer)
    ids = detector.encode("the red car. a dog. person")["input_ids"][0].tolist()
    rng = np.random.default_rng(7)
    logits = rng.normal(-1.0, 1.5, (40, 16)).astype(np.float32)
    logits[:, len(ids):] = -np.inf
    # keep [CLS]/[SEP]/"." out of reach of text_threshold: transformers would print them in labels
    logits[:, [i for i, t in enumerate(ids) if t in detector.skip_ids]] = -8.0
    centers = rng.uniform(0.3, 0.7, (40, 2))
    sizes = rng.uniform(0.05, 0.5, (40, 2))
    boxes = np.concatenate([centers, sizes], axis=1).astype(np.float32)
    outputs = SimpleNamespace(logits=torch.from_numpy(logits)[None], pred_boxes=torch.from_numpy(boxes)[None])
    theirs = processor.post_process_grounded_object_detection(
        outputs, input_ids=torch.tensor([ids]), threshold=0.4, text_threshold=0.3,
        target_sizes=[(90, 160)])[0]
    ours = postprocess_grounding(logits, boxes, ids, (90, 160), skip_ids=detector.skip_ids,
                                 decode=lambda t: detector.tokenizer.decode(t, skip_special_tokens=True),
                                 box_threshold=0.4, text_threshold=0.3, max_boxes=100)
    order = sorted(range(len(theirs["scores"])), key=lambda i: -float(theirs["scores"][i]))
    assert len(ours) == len(order) > 5
    np.testing.assert_allclose([d.score for d in ours], theirs["scores"][order].numpy(), rtol=1e-6)
    np.testing.assert_allclose([d.box for d in ours], theirs["boxes"][order].numpy(), atol=1e-4)
    assert [d.label for d in ours] == [theirs["text_labels"][i] for i in order]


# --- prompts ------------------------------------------------------------------------------


def test_boxes_to_prompts_order_and_ids() -> None:
    dets = [Detection((0.0, 0.0, 10.0, 10.0), 0.4, "dog"), Detection((1.0, 2.0, 3.0, 4.0), 0.9, "person"),
            Detection((5.0, 5.0, 6.0, 6.0), 0.4, ""), Detection((2.0, 2.0, 8.0, 9.0), 0.7, "red car")]
    prompts = boxes_to_prompts(dets, frame_index=3, first_object_id=10)
    assert prompts == [
        Prompt(frame=3, object_id=10, box=(1.0, 2.0, 3.0, 4.0), text="person"),
        Prompt(frame=3, object_id=11, box=(2.0, 2.0, 8.0, 9.0), text="red car"),
        Prompt(frame=3, object_id=12, box=(0.0, 0.0, 10.0, 10.0), text="dog"),
        Prompt(frame=3, object_id=13, box=(5.0, 5.0, 6.0, 6.0), text=None),
    ]
    assert boxes_to_prompts([], 0) == []
    with pytest.raises(InvalidArgumentError, match="1..255"):
        boxes_to_prompts(dets, 0, first_object_id=253)
    with pytest.raises(InvalidArgumentError, match="frame"):
        boxes_to_prompts(dets, -1)


# --- errors -------------------------------------------------------------------------------


def test_bad_input_errors(detector: TextDetector, frame: np.ndarray) -> None:
    cases = [
        (lambda: detector.detect(frame, ""), "empty"),
        (lambda: detector.detect(frame, " . "), "empty"),
        (lambda: detector.detect(frame.astype(np.float32), "person"), "uint8"),
        (lambda: detector.detect(frame[..., 0], "person"), "shape"),
        (lambda: detector.detect(frame.tolist(), "person"), "numpy"),  # type: ignore[arg-type]
        (lambda: detector.detect(frame, "person", max_boxes=0), "max_boxes"),
        (lambda: detector.detect(frame, ". ".join(["red car"] * 20)), "tokens"),
    ]
    for call, match in cases:
        with pytest.raises(InvalidArgumentError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_missing_or_broken_model(tmp_path: Path, tiny_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        TextDetector(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, broken / name)
    with pytest.raises(ModelNotFoundError, match="cannot load Grounding DINO") as info:
        TextDetector(broken)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="segment-video"):
        TextDetector("sam2-tiny")


def test_default_model_from_registry(tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     frame: np.ndarray) -> None:
    shutil.copytree(tiny_dir, tmp_path / "grounding-dino-tiny")
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    default = TextDetector(device="cpu")
    assert default.model_dir == tmp_path / "grounding-dino-tiny"
    assert default.detect(frame, "person", box_threshold=0.0, max_boxes=3) == TextDetector(
        "grounding-dino-tiny", device="cpu").detect(frame, "person", box_threshold=0.0, max_boxes=3)
