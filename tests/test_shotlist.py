"""Writing for kinema tv: shot lists from a theme by templates, an OpenAI-compatible server
(a canned one on 127.0.0.1 here) or a transformers instruct model (the tiny Qwen2)."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from kinema.generate.shotlist import (
    ChatWriter,
    NoValidAnswerError,
    OpenAIWriter,
    Shot,
    ShotList,
    TemplateWriter,
    TransformersWriter,
    WritingError,
    build_messages,
    extract_json,
    parse_shot_list,
    write_shot_list,
    writer_for,
)

GOOD = {
    "subject": "a red fox with a white-tipped tail, snowy pine forest, watercolour style",
    "shots": [
        {"prompt": "the fox wakes in its den", "duration": 4, "camera": "slow dolly in",
         "subject": "a red fox with a white-tipped tail, snowy pine forest, watercolour style",
         "mood": "calm ambient piano"},
        {"prompt": "the fox leaps into deep snow", "duration": "5 seconds", "camera": "tracking",
         "mood": "playful pizzicato"},
    ],
}


# -- the model ----------------------------------------------------------------------------------


def test_shot_list_repeats_the_subject_and_merges_music_cues() -> None:
    shots = ShotList.model_validate({**GOOD, "theme": "a fox",
                                     "shots": [*GOOD["shots"], {**GOOD["shots"][1], "duration": 3}]})
    assert all(shot.subject == GOOD["subject"] for shot in shots.shots)  # filled in where left out
    assert shots.shots[1].duration == 5.0  # "5 seconds"
    assert shots.duration == 12.0
    assert shots.music_cues() == [("calm ambient piano", 4.0), ("playful pizzicato", 8.0)]
    prompt = shots.shots[1].video_prompt()
    assert prompt.startswith("the fox leaps into deep snow") and GOOD["subject"] in prompt
    assert "tracking shot" in prompt


@pytest.mark.parametrize("bad", [{"prompt": "", "duration": 4}, {"prompt": "x", "duration": 0},
                                 {"prompt": "x", "duration": 600}, {"duration": 4}])
def test_shot_rejects_bad_fields(bad: dict) -> None:
    with pytest.raises(ValueError):
        Shot.model_validate(bad)


# -- the template writer --------------------------------------------------------------------------


def test_template_writer_is_deterministic_and_valid() -> None:
    writer = TemplateWriter()
    first = writer.write("a lighthouse keeper and her cat", shots=8, seed=3)
    assert first == writer.write("a lighthouse keeper and her cat", shots=8, seed=3)
    assert first != writer.write("a lighthouse keeper and her cat", shots=8, seed=4)
    assert ShotList.model_validate_json(first.model_dump_json()) == first
    assert len(first.shots) == 8 and first.duration == 32.0
    assert all("a lighthouse keeper and her cat" in s.subject for s in first.shots)
    assert len({s.subject for s in first.shots}) == 1  # one subject, repeated word for word
    cameras = [s.camera for s in first.shots]
    assert len(set(cameras)) == 8  # varied moves
    moods = [s.mood for s in first.shots]
    assert 2 <= len(set(moods)) <= 4  # a mood holds for two or three shots
    assert all(a != b for a, b in itertools.pairwise(cameras))


@pytest.mark.parametrize(("theme", "shots"), [("   ", 4), ("a fox", 0), ("a fox", 1000)])
def test_template_writer_refuses_bad_requests(theme: str, shots: int) -> None:
    with pytest.raises(WritingError):
        TemplateWriter().write(theme, shots=shots)


def test_writer_for_picks_by_the_llm_option(tiny_llm) -> None:
    assert isinstance(writer_for(None), TemplateWriter)
    assert isinstance(writer_for("http://127.0.0.1:9/v1"), OpenAIWriter)
    assert isinstance(writer_for(tiny_llm), TransformersWriter)


# -- JSON out of LLM text -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    json.dumps(GOOD),
    "Sure! Here is your shot list:\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nEnjoy!",
    "Here you go: " + json.dumps(GOOD) + " Let me know if you want changes {like this}.",
    json.dumps(GOOD, indent=1).replace('"mood": "playful pizzicato"', '"mood": "playful pizzicato",'),
    "<think>a fox {maybe}</think>\n" + json.dumps(GOOD),
    '<think>first {"shots": []}, then more</think>' + json.dumps(GOOD),
])
def test_extract_json_from_messy_text(text: str) -> None:
    found = parse_shot_list(text, "a fox", shots=2)
    assert [s.prompt for s in found.shots] == ["the fox wakes in its den", "the fox leaps into deep snow"]
    assert found.theme == "a fox" and found.subject == GOOD["subject"]


def test_extract_json_handles_braces_in_strings_and_bare_lists() -> None:
    assert extract_json('x {"a": "}{", "b": [1, 2]} y') == {"a": "}{", "b": [1, 2]}
    found = parse_shot_list("shots: " + json.dumps(GOOD["shots"]), "a fox")
    assert found.subject == GOOD["subject"]  # taken from the first shot that has one


@pytest.mark.parametrize(("text", "problem"), [
    ("no json here", "no JSON"),
    ('{"shots": []}', "shots"),
    ('{"subject": "x", "shots": [{"prompt": "a", "duration": -1}]}', "duration"),
    ("[1, 2", "no JSON"),
])
def test_parse_shot_list_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_shot_list(text, "a fox")
    with pytest.raises(ValueError, match="1 shots, not 3"):
        parse_shot_list(json.dumps({**GOOD, "shots": GOOD["shots"][:1]}), "a fox", shots=3)


class Scripted(ChatWriter):
    """A chat writer answering from a list: the retry logic without a model."""

    name = "the scripted model"

    def __init__(self, answers: list[str], **options: object) -> None:
        super().__init__(**options)
        self.answers = answers
        self.calls: list[list[dict[str, str]]] = []

    def complete(self, messages, *, seed):
        self.calls.append(messages)
        return self.answers[len(self.calls) - 1]


def test_chat_writer_retries_with_the_problem_then_succeeds() -> None:
    writer = Scripted(["I cannot do JSON today", json.dumps(GOOD)])
    found = writer.write("a fox", shots=2)
    assert len(found.shots) == 2 and len(writer.calls) == 2
    retry = writer.calls[1]
    assert retry[-2] == {"role": "assistant", "content": "I cannot do JSON today"}
    assert "no JSON object" in retry[-1]["content"]


def test_chat_writer_gives_up_after_its_attempts_then_falls_back(kinema_warnings) -> None:
    writer = Scripted(["nope"] * 5, attempts=2)
    with pytest.raises(NoValidAnswerError, match="no valid shot list in 2 tries"):
        writer.write("a fox", shots=2)
    assert len(writer.calls) == 2
    writer = Scripted(["nope"] * 5, attempts=2)
    found = write_shot_list("a fox", writer=writer, shots=3, seed=1)
    assert found == TemplateWriter().write("a fox", shots=3, seed=1)
    assert any("template writer" in m for m in kinema_warnings)
    with pytest.raises(NoValidAnswerError):
        write_shot_list("a fox", writer=Scripted(["nope"] * 5, attempts=1), shots=2, fallback=False)


# -- an OpenAI-compatible server --------------------------------------------------------------------


class _Canned(BaseHTTPRequestHandler):
    answers: ClassVar[list[str]] = []
    requests: ClassVar[list[dict]] = []
    status = 200
    models: ClassVar[list[str] | None] = None

    def do_GET(self) -> None:
        type(self).requests.append({"path": self.path, "body": None,
                                    "auth": self.headers.get("Authorization")})
        if self.path != "/v1/models" or type(self).models is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps({"object": "list", "data": [{"id": m, "object": "model"}
                                                      for m in type(self).models]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(b'{"error": "no such model"}')
            return
        posts = sum(1 for r in type(self).requests if r["body"] is not None)
        answer = type(self).answers[min(posts, len(type(self).answers)) - 1]
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": answer}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned_server():
    """A server on 127.0.0.1 answering /v1/chat/completions from ``answers``."""

    class Handler(_Canned):
        answers: ClassVar[list[str]] = []
        requests: ClassVar[list[dict]] = []
        status = 200
        models: ClassVar[list[str] | None] = None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", Handler
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_openai_writer_against_a_canned_server(canned_server, monkeypatch) -> None:
    url, handler = canned_server
    monkeypatch.setenv("KINEMA_LLM_API_KEY", "sk-test")
    handler.answers = ["```json\n" + json.dumps(GOOD) + "\n```"]
    found = writer_for(url + "/", model="qwen2.5").write("a fox in the snow", shots=2, seed=7)
    assert found.subject == GOOD["subject"] and found.theme == "a fox in the snow"
    [request] = handler.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "qwen2.5" and body["seed"] == 7 and body["stream"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"] == build_messages("a fox in the snow", 2)
    assert "exactly 2 shots" in body["messages"][0]["content"]


def test_openai_writer_asks_the_server_for_its_model_name(canned_server) -> None:
    url, handler = canned_server
    handler.answers = [json.dumps(GOOD)]
    handler.models = ["Qwen/Qwen2.5-7B-Instruct", "other"]  # vLLM answers only to its name
    writer = OpenAIWriter(url)
    writer.write("a fox", shots=2)
    writer.write("a fox", shots=2)
    assert [r["path"] for r in handler.requests] == ["/v1/models", "/v1/chat/completions",
                                                     "/v1/chat/completions"]  # listed once
    assert handler.requests[1]["body"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    handler.requests.clear()
    handler.models = None  # a server without /models
    OpenAIWriter(url).write("a fox", shots=2)
    assert handler.requests[-1]["body"]["model"] == "default"


def test_openai_writer_retries_invalid_json_then_errors(canned_server) -> None:
    url, handler = canned_server
    handler.answers = ['{"shots": [', json.dumps(GOOD)]
    assert len(OpenAIWriter(url).write("a fox", shots=2).shots) == 2
    assert [r["path"] for r in handler.requests].count("/v1/chat/completions") == 2
    handler.requests.clear()
    handler.answers = ["not json"]
    with pytest.raises(NoValidAnswerError, match="no valid shot list in 3 tries"):
        OpenAIWriter(url, model="m").write("a fox", shots=2)
    assert len(handler.requests) == 3


def test_openai_writer_http_error_is_one_clear_error(canned_server) -> None:
    url, handler = canned_server
    handler.status = 404
    with pytest.raises(WritingError, match="HTTP 404: .*no such model"):
        write_shot_list("a fox", writer=OpenAIWriter(url, model="m"))  # not a bad answer: no fallback
    assert len(handler.requests) == 1


def test_unreachable_endpoint_is_one_clear_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    writer = OpenAIWriter(f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(WritingError, match=f"could not reach the LLM at http://127.0.0.1:{port}/v1") as info:
        write_shot_list("a fox", writer=writer)
    assert not isinstance(info.value, NoValidAnswerError)
    assert "server running" in (info.value.hint or "")
    with pytest.raises(WritingError, match="not an http"):
        OpenAIWriter("ftp://x")


# -- transformers: the tiny Qwen2 ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_writer(tiny_llm) -> TransformersWriter:
    pytest.importorskip("torch")
    return TransformersWriter(tiny_llm, device="cpu", max_tokens=24, attempts=2)


def test_transformers_writer_prompts_through_the_chat_template(tiny_writer) -> None:
    text = tiny_writer.prompt_text(build_messages("a fox", 3))
    assert text.startswith("<|im_start|>system\nYou write shot lists")
    assert "<|im_start|>user\nTheme: a fox\nWrite 3 shots as JSON.<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_transformers_writer_generates_seeded_and_falls_back(tiny_writer, kinema_warnings) -> None:
    messages = build_messages("a fox", 2)
    first = tiny_writer.complete(messages, seed=5)
    assert isinstance(first, str) and first == tiny_writer.complete(messages, seed=5)
    # Random weights never write a shot list: two tries, then the template writer.
    with pytest.raises(NoValidAnswerError, match="no valid shot list in 2 tries"):
        tiny_writer.write("a fox", shots=2)
    found = write_shot_list("a fox", writer=tiny_writer, shots=2, seed=5)
    assert found == TemplateWriter().write("a fox", shots=2, seed=5)
    assert any("gave no valid shot list" in m for m in kinema_warnings)


def test_transformers_writer_needs_a_chat_model(tiny_llm, tmp_path) -> None:
    pytest.importorskip("torch")
    import shutil

    folder = tmp_path / "plain"
    shutil.copytree(tiny_llm, folder)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(WritingError, match="no chat template"):
        TransformersWriter(folder, device="cpu").write("a fox", shots=1)


def test_transformers_writer_missing_model_is_one_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    from kinema.core.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="qwen2.5-0.5b-instruct"):
        TransformersWriter(None).write("a fox", shots=1)


def test_kinema_models_tiny_llm_resolves_by_name(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from kinema.cli.main import app
    from kinema.models import registry

    run = CliRunner().invoke(app, ["models", "tiny", "llm", str(tmp_path / "qwen2.5-0.5b-instruct")])
    assert run.exit_code == 0, run.output
    assert "--llm" in run.output
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path))
    assert registry.resolve(None, task="write") == tmp_path / "qwen2.5-0.5b-instruct"
    entry = registry.spec("qwen2.5-0.5b-instruct")
    assert entry.licence == "Apache-2.0" and len(entry.revision) == 40
    text = TransformersWriter(None, device="cpu").prompt_text(build_messages("a fox", 1))
    assert text.endswith("<|im_start|>assistant\n")
