"""Writing for kinema tv: a theme becomes a :class:`ShotList`, the shots a channel films.

A shot list names one ``subject`` (the characters and look that must stay the same from shot to
shot) and its shots: each a ``prompt`` (what happens), a ``duration`` in seconds, a ``camera``
move, the ``subject`` details again (repeated in every shot, since a text-to-video model sees one
shot's words at a time) and the ``mood`` of its music. :meth:`Shot.video_prompt` is the text a
video model is given; :meth:`ShotList.music_cues` the moods and lengths the score is made from.

Three writers, one interface (``write(theme, shots=N, seed=S) -> ShotList``):

- :class:`TemplateWriter`: no model. Deterministic from the theme and the seed: the theme as the
  subject, shots cycling through actions, camera moves and moods drawn without repeats in a row.
- :class:`TransformersWriter`: a small instruct model (the registry's ``qwen2.5-0.5b-instruct``,
  or any folder ``AutoModelForCausalLM`` loads), prompted through the tokenizer's chat template
  to answer with JSON only.
- :class:`OpenAIWriter`: any OpenAI-compatible server (llama.cpp's ``llama-server``, vLLM,
  Ollama's ``/v1``): one plain HTTP ``POST {url}/chat/completions`` (stdlib ``urllib``), with
  ``response_format: json_object``, which those servers enforce with a grammar.

The two language-model writers share :class:`ChatWriter`: the same messages, the JSON taken out
of whatever text comes back (:func:`extract_json`: code fences, prose around it, trailing
commas), validated (:func:`parse_shot_list`); an answer that is not a valid shot list is asked
for again, with what was wrong, up to ``attempts`` times, then one :class:`WritingError` naming
the last problem. An unreachable server is one error at once (no retries).

Constrained decoding: transformers has no JSON grammar of its own (``response_format`` is a
server feature), and pulling in a grammar library for a 0.5B model was not worth it; the
retries are the guard, and :func:`write_shot_list` falls back to the template writer (with a
logged warning) when a model never gives a valid list, so a channel keeps going. A tiny
random-weight model always takes that path, which is what its tests check.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kinema.core.errors import KinemaError

log = logging.getLogger(__name__)

MAX_SHOTS = 64
MAX_SHOT_SECONDS = 60.0


class WritingError(KinemaError):
    """No shot list could be written: the model's answers were never a valid shot list, or the
    LLM server could not be reached."""


class NoValidAnswerError(WritingError):
    """A model answered, but never with a valid shot list (within its attempts)."""


class Shot(BaseModel):
    """One shot: what happens, for how long, how the camera moves, who is in it, the music."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=1000)
    duration: float = Field(gt=0, le=MAX_SHOT_SECONDS)
    camera: str = Field(default="static", max_length=200)
    subject: str = Field(default="", max_length=1000)
    mood: str = Field(default="calm", min_length=1, max_length=200)

    def video_prompt(self) -> str:
        """The words a text-to-video model gets: the action, the subject (unless the prompt
        already says it) and the camera move."""
        parts = [self.prompt]
        if self.subject and self.subject.lower() not in self.prompt.lower():
            parts.append(self.subject)
        if self.camera:
            parts.append(f"{self.camera} shot" if "shot" not in self.camera.lower() else self.camera)
        return ", ".join(parts)


class ShotList(BaseModel):
    """A theme's shots; every shot carries the list's ``subject`` (filled in where a writer
    left it out)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    theme: str = Field(min_length=1, max_length=1000)
    subject: str = Field(min_length=1, max_length=1000)
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)

    @field_validator("shots", mode="before")
    @classmethod
    def _shot_dicts(cls, value: object) -> object:
        if isinstance(value, list):
            return [_normalise_shot(item) if isinstance(item, dict) else item for item in value]
        return value

    @model_validator(mode="after")
    def _repeat_subject(self) -> ShotList:
        for shot in self.shots:
            if not shot.subject:
                shot.subject = self.subject
        return self

    @property
    def duration(self) -> float:
        """Seconds of all the shots together."""
        return sum(shot.duration for shot in self.shots)

    def music_cues(self) -> list[tuple[str, float]]:
        """``(mood, seconds)`` pieces of music: consecutive shots of one mood share a piece."""
        cues: list[tuple[str, float]] = []
        for shot in self.shots:
            if cues and cues[-1][0] == shot.mood:
                cues[-1] = (shot.mood, cues[-1][1] + shot.duration)
            else:
                cues.append((shot.mood, shot.duration))
        return cues


# Keys a model may use for a shot's fields, mapped to ours.
_ALIASES = {"description": "prompt", "text": "prompt", "action": "prompt", "seconds": "duration",
            "length": "duration", "camera_move": "camera", "camera_movement": "camera",
            "music": "mood", "music_mood": "mood", "character": "subject", "characters": "subject"}


def _normalise_shot(item: dict) -> dict:
    out = dict(item)
    for alias, key in _ALIASES.items():
        if alias in out and key not in out:
            out[key] = out.pop(alias)
    duration = out.get("duration")
    if isinstance(duration, str):  # "4s", "4 seconds"
        found = re.match(r"\s*(\d+(?:\.\d+)?)", duration)
        if found:
            out["duration"] = float(found.group(1))
    for key in ("subject", "camera", "mood"):
        if isinstance(out.get(key), (list, dict)):
            value = out[key]
            out[key] = ", ".join(str(v) for v in (value.values() if isinstance(value, dict) else value))
    return out


class ShotWriter(Protocol):
    """What every writer does: a theme in, a validated shot list out."""

    name: str

    def write(self, theme: str, *, shots: int = 6, seed: int = 0) -> ShotList: ...


def _check_request(theme: str, shots: int) -> str:
    theme = " ".join(str(theme).split())
    if not theme:
        raise WritingError("the theme is empty", hint="give a few words: kinema tv 'a fox in the snow'")
    if not 1 <= shots <= MAX_SHOTS:
        raise WritingError(f"cannot write {shots} shots", hint=f"ask for 1 to {MAX_SHOTS}")
    return theme


# -- the template writer -----------------------------------------------------------------------

_ACTIONS = (
    "establishing view of {theme}", "{theme}, a quiet moment", "close detail of {theme}",
    "{theme} in motion", "{theme} seen from afar", "{theme} at golden hour",
    "{theme} under changing light", "a new angle on {theme}", "{theme}, the scene at its liveliest",
    "{theme}, a lingering last look",
)
_CAMERAS = ("slow dolly in", "slow pan left", "slow pan right", "static wide", "crane up",
            "tracking", "handheld close-up", "orbit", "dolly out", "tilt up")
_MOODS = ("calm ambient", "uplifting", "dreamy", "tense", "playful", "melancholic", "epic")
_LOOKS = ("cinematic, soft light", "film grain, warm tones", "crisp, natural colours",
          "moody, high contrast", "pastel, gentle haze")


class TemplateWriter:
    """No model: shots from the theme by templates, the same list for the same theme and seed.
    The theme (and one look drawn from the seed) is the subject repeated in every shot; camera
    moves vary shot to shot; the music mood changes every two or three shots."""

    name = "template"

    def __init__(self, *, duration: float = 4.0) -> None:
        if not 0 < duration <= MAX_SHOT_SECONDS:
            raise WritingError(f"a shot of {duration} s", hint=f"give 0 to {MAX_SHOT_SECONDS:g} s")
        self.duration = float(duration)

    def write(self, theme: str, *, shots: int = 6, seed: int = 0) -> ShotList:
        theme = _check_request(theme, shots)
        rng = random.Random(f"{seed}:{theme}")
        subject = f"{theme}, {rng.choice(_LOOKS)}"
        actions = rng.sample(_ACTIONS, len(_ACTIONS))
        cameras = rng.sample(_CAMERAS, len(_CAMERAS))
        moods = rng.sample(_MOODS, len(_MOODS))
        out: list[Shot] = []
        mood_index, mood_left = 0, rng.randint(2, 3)
        for i in range(shots):
            if mood_left == 0:
                mood_index, mood_left = mood_index + 1, rng.randint(2, 3)
            mood_left -= 1
            out.append(Shot(prompt=actions[i % len(actions)].format(theme=theme),
                            duration=self.duration, camera=cameras[i % len(cameras)], subject=subject,
                            mood=moods[mood_index % len(moods)]))
        return ShotList(theme=theme, subject=subject, shots=out)


# -- language models: prompt, JSON out, validation, retries --------------------------------------

SYSTEM_PROMPT = """You write shot lists for a generated TV channel. Answer with one JSON object \
and nothing else, in this form:
{"subject": "who or what is on screen, with the details that must stay the same in every shot \
(appearance, clothes, colours, place, style)",
 "shots": [{"prompt": "what happens in this shot, visually", "duration": 4, \
"camera": "camera move, e.g. slow dolly in", "subject": "the subject details again, word for word", \
"mood": "music mood, e.g. calm ambient piano"}]}
Rules: exactly N shots; durations in seconds, between 2 and 8; repeat the subject details in \
every shot so characters stay consistent; vary the camera moves; keep the music mood steady \
for a few shots at a time."""


def build_messages(theme: str, shots: int) -> list[dict[str, str]]:
    """The chat both LLM writers send: the system prompt and the theme."""
    system = SYSTEM_PROMPT.replace("exactly N shots", f"exactly {shots} shots")
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Theme: {theme}\nWrite {shots} shots as JSON."}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_THINKING = re.compile(r"<think>.*?</think>", re.S | re.I)


def extract_json(text: str) -> object:
    """The JSON value in an LLM's answer: inside a code fence, or the first balanced ``{...}``
    or ``[...]`` with prose around it (``<think>...</think>`` left out); trailing commas
    forgiven. ``ValueError`` if none."""
    text = _THINKING.sub("", text)  # a reasoning model's thoughts may hold braces of their own
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for start, ch in enumerate(candidate):
            if ch not in "{[":
                continue
            end = _balanced_end(candidate, start)
            if end is None:
                continue
            chunk = candidate[start:end]
            for attempt in (chunk, _TRAILING_COMMA.sub(r"\1", chunk)):
                try:
                    return json.loads(attempt)
                except ValueError:
                    pass
    raise ValueError("no JSON object in the answer")


def _balanced_end(text: str, start: int) -> int | None:
    """Where the bracket at ``start`` closes (strings respected), or ``None``."""
    closing = {"{": "}", "[": "]"}
    stack: list[str] = []
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in closing:
            stack.append(closing[ch])
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
    return None


def parse_shot_list(text: str, theme: str, *, shots: int | None = None) -> ShotList:
    """The shot list in an LLM's ``text`` for ``theme``; ``ValueError`` saying what is wrong
    (no JSON, a field missing or out of range, not ``shots`` shots)."""
    data = extract_json(text)
    if isinstance(data, list):  # just the shots
        data = {"shots": data}
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object with shots")
    data = {**data, "theme": theme}
    if not data.get("subject") and isinstance(data.get("shots"), list):
        first = next((s for s in data["shots"] if isinstance(s, dict) and s.get("subject")), None)
        data["subject"] = first["subject"] if first else theme
    try:
        found = ShotList.model_validate(data)
    except ValidationError as exc:
        first_error = exc.errors()[0]
        where = ".".join(str(p) for p in first_error["loc"])
        raise ValueError(f"{where}: {first_error['msg']}") from None
    if shots is not None and len(found.shots) != shots:
        raise ValueError(f"{len(found.shots)} shots, not {shots}")
    return found


class ChatWriter(ABC):
    """A writer that asks a chat model: messages out, text back, parsed and validated; an
    invalid answer is asked for again with what was wrong, ``attempts`` times in all."""

    name = "llm"

    def __init__(self, *, attempts: int = 3, max_tokens: int = 1500, temperature: float = 0.7) -> None:
        if attempts < 1:
            raise WritingError("attempts must be at least 1")
        self.attempts = attempts
        self.max_tokens = max_tokens
        self.temperature = temperature

    @abstractmethod
    def complete(self, messages: list[dict[str, str]], *, seed: int) -> str:
        """The model's answer to ``messages``."""

    def write(self, theme: str, *, shots: int = 6, seed: int = 0) -> ShotList:
        theme = _check_request(theme, shots)
        messages = build_messages(theme, shots)
        problem = ""
        for attempt in range(self.attempts):
            answer = self.complete(messages, seed=seed + attempt)
            try:
                return parse_shot_list(answer, theme, shots=shots)
            except ValueError as exc:
                problem = str(exc)
                log.info("%s: answer %d of %d was not a shot list (%s)", self.name, attempt + 1,
                         self.attempts, problem)
                messages = [*build_messages(theme, shots),
                            {"role": "assistant", "content": answer[:2000]},
                            {"role": "user", "content": f"That was not a valid shot list ({problem}). "
                                                        "Answer with the JSON object only."}]
        raise NoValidAnswerError(f"{self.name} gave no valid shot list in {self.attempts} tries; the last "
                                 f"answer: {problem}",
                                 hint="try another model, or no --llm for the template writer")


class TransformersWriter(ChatWriter):
    """A local instruct model through transformers: ``model`` a folder or a registry name
    (task ``write``, default ``qwen2.5-0.5b-instruct``). Loaded on first use and kept."""

    def __init__(self, model: str | os.PathLike[str] | None = None, *, device: str | None = None,
                 **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.model = model
        self.device = device
        self._loaded: tuple[object, object] | None = None
        self.name = f"the model {Path(model).name if model is not None else 'qwen2.5-0.5b-instruct'}"

    def _load(self) -> tuple[object, object]:
        if self._loaded is None:
            from kinema.core.extras import require
            from kinema.models.device import choose_device, choose_dtype
            from kinema.models.registry import resolve

            folder = resolve(self.model, task="write")
            transformers = require("transformers", "ml", feature="writing with a local model")
            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            device = choose_device(self.device)
            dtype = choose_dtype(device)
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            if not getattr(tokenizer, "chat_template", None):
                raise WritingError("the model has no chat template", path=folder,
                                   hint="give an instruct (chat) model")
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        """``messages`` through the model's chat template, ready for the assistant's turn."""
        tokenizer, _ = self._load()
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def complete(self, messages: list[dict[str, str]], *, seed: int) -> str:
        from kinema.models.device import import_torch

        torch = import_torch()
        tokenizer, model = self._load()
        inputs = tokenizer(self.prompt_text(messages), return_tensors="pt").to(model.device)
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            if model.device.type == "cuda":
                torch.cuda.manual_seed_all(seed)
            out = model.generate(**inputs, max_new_tokens=self.max_tokens, do_sample=self.temperature > 0,
                                 temperature=self.temperature or None,
                                 pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class OpenAIWriter(ChatWriter):
    """An OpenAI-compatible server at ``url`` (``http://host:port/v1``): one POST to
    ``/chat/completions`` per attempt. ``model`` is the request's model name; without one, the
    first model the server lists at ``GET /models`` (vLLM answers only to the name it serves;
    llama.cpp's server takes any), or ``"default"`` when it lists none.
    ``$KINEMA_LLM_API_KEY`` (or ``$OPENAI_API_KEY``) is sent as a bearer key when set."""

    def __init__(self, url: str, *, model: str | None = None, timeout: float = 120.0,
                 json_mode: bool = True, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        if not re.match(r"https?://", url):
            raise WritingError(f"{url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080/v1")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.json_mode = json_mode
        self.name = f"the LLM at {self.url}"

    def _request(self, path: str, body: dict | None = None) -> object:
        """The JSON answer of ``GET``/``POST`` ``{url}{path}``; one :class:`WritingError` when
        the server cannot be reached or answers an error or not JSON."""
        import urllib.error
        import urllib.request

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        key = os.environ.get("KINEMA_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.url}{path}", headers=headers,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            raise WritingError(f"{self.name} answered HTTP {exc.code}: {detail or exc.reason}",
                               hint="check the URL (it ends in /v1) and the model name") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WritingError(f"could not reach {self.name}: {reason}",
                               hint="is the server running? (e.g. llama-server --port 8080)") from None
        except ValueError:
            raise WritingError(f"{self.name} did not answer JSON",
                               hint="give the server's OpenAI-compatible base URL, ending in /v1") from None

    def model_name(self) -> str:
        """The model name requests carry: the one given, else the server's first listed."""
        if self.model is None:
            try:
                listed = self._request("/models")
                self.model = str(listed["data"][0]["id"])  # type: ignore[index]
            except WritingError as exc:
                if exc.reason.startswith("could not reach"):
                    raise
                self.model = "default"
            except (KeyError, IndexError, TypeError):
                self.model = "default"
        return self.model

    def complete(self, messages: list[dict[str, str]], *, seed: int) -> str:
        body: dict = {"model": self.model_name(), "messages": messages, "temperature": self.temperature,
                      "max_tokens": self.max_tokens, "seed": seed, "stream": False}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        reply = self._request("/chat/completions", body)
        try:
            return str(reply["choices"][0]["message"]["content"] or "")  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            raise WritingError(f"{self.name} gave no chat completion",
                               hint="give the server's OpenAI-compatible base URL, ending in /v1") from None


def writer_for(llm: str | os.PathLike[str] | None, **options: object) -> ShotWriter:
    """The writer ``--llm`` names: none, the template writer; an ``http(s)://`` URL, an
    OpenAI-compatible server; otherwise a registry name or model folder for transformers."""
    if llm is None or str(llm) == "":
        return TemplateWriter()
    text = str(llm)
    if re.match(r"https?://", text):
        return OpenAIWriter(text, **options)
    return TransformersWriter(llm, **options)


def write_shot_list(theme: str, *, writer: ShotWriter | None = None, shots: int = 6, seed: int = 0,
                    fallback: bool = True) -> ShotList:
    """``theme``'s shot list by ``writer`` (the template writer if ``None``). With ``fallback``,
    a model that never gives a valid list is replaced by the template writer with a warning
    logged; an unreachable server, an empty theme or a bad count are errors either way."""
    writer = writer or TemplateWriter()
    try:
        return writer.write(theme, shots=shots, seed=seed)
    except WritingError as exc:
        if not fallback or not isinstance(exc, NoValidAnswerError):
            raise
        log.warning("%s; using the template writer instead", exc.reason)
        return TemplateWriter().write(theme, shots=shots, seed=seed)
