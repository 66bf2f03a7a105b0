"""The LLM backend: the same interface as the rules backend, answers asked of an OpenAI-compatible server.

Clip and pair text go into the prompt only as JSON data between delimiters; the reply is parsed into pydantic
(json_schema response_format when the server takes it, else JSON found in plain text). Parsing failures become
`Failure`s with a reason; `validate` then checks every parsed proposal against the clip's own text.
"""

from __future__ import annotations

import copy
import json
import re

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from pipeline.extract.cache import LLMCache
from pipeline.extract.client import ChatReply, ChatRequest, LLMClient, LLMSettings
from pipeline.extract.prompts import Prompt, load_prompt, load_prompt_file, prompt_versions
from pipeline.extract.records import (
    AnimalProposal,
    CategoriseReply,
    CategoryProposal,
    ClipText,
    Failure,
    PairText,
    SentenceProposal,
)
from pipeline.extract.rules import fill_template

__all__ = ["OpenAIBackend", "parse_reply", "strict_schema", "bounded_schema", "SCHEMAS", "BOUNDED_SCHEMAS", "REPLY_MODELS"]

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
_DELIMS = re.compile(r"<\s*/?\s*(?:clips?|pair)\s*>", re.IGNORECASE)

_DROP_KEYS = ("title", "default", "description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_BOUNDS = ("maxLength", "pattern", "minItems", "maxItems")  # what the strict subset leaves out; a grammar keeps


def strict_schema(model: type[BaseModel], bounds: bool = False) -> dict:
    """The JSON schema of a reply model in the form strict structured output needs: references inlined, every object
    closed (additionalProperties false) with all its properties required, no defaults, titles or numeric bounds
    (pydantic checks those after parsing), no string or array bounds. `bounds=True` keeps the models' maxLength and
    pattern (see `bounded_schema`)."""
    full = model.model_json_schema()
    defs = full.pop("$defs", {})
    drop = _DROP_KEYS if bounds else _DROP_KEYS + _BOUNDS

    def walk(node: object) -> object:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
        out = {k: walk(v) for k, v in node.items() if k not in drop and k != "properties"}
        if "properties" in node:
            out["properties"] = {name: walk(sub) for name, sub in node["properties"].items()}
        if out.get("type") == "object":
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    return walk(full)  # type: ignore[return-value]


def bounded_schema(model: type[BaseModel]) -> dict:
    """The strict schema plus the models' string bounds (maxLength, a sentence's one-[MASK] pattern): what goes with
    `response_format: json_object` to a server that compiles the schema into a grammar (llama.cpp), so that a small
    model's reply always closes (no string runs on to max_tokens) and has the shape the validators ask for."""
    return strict_schema(model, bounds=True)


REPLY_MODELS: dict[str, type[BaseModel]] = {"categorise": CategoriseReply, "animal_item": AnimalProposal,
                                            "comparison_sentence": SentenceProposal}
SCHEMAS = {name: strict_schema(model) for name, model in REPLY_MODELS.items()}
BOUNDED_SCHEMAS = {name: bounded_schema(model) for name, model in REPLY_MODELS.items()}


def _categorise_bounds(n: int) -> dict:
    """The bounded categorise schema for a batch of n clips: exactly n entries, ids c1..cn."""
    schema = copy.deepcopy(BOUNDED_SCHEMAS["categorise"])
    clips = schema["properties"]["clips"]
    clips["minItems"] = clips["maxItems"] = n
    clips["items"]["properties"]["id"] = {"type": "string", "enum": [f"c{i + 1}" for i in range(n)]}
    return schema


def _sentence_bounds(choices: tuple[str, ...]) -> dict:
    """The bounded sentence schema for a task: the guess is one of its choices or "unsure"."""
    schema = copy.deepcopy(BOUNDED_SCHEMAS["comparison_sentence"])
    schema["properties"]["guess"] = {"type": "string", "enum": [*choices, "unsure"]}
    return schema


def parse_reply(reply: ChatReply, model: type[BaseModel]) -> BaseModel | Failure:
    """A server reply as a pydantic object, or why not (transport error, truncated, malformed JSON, wrong schema)."""
    if reply.error:
        return Failure(reply.error, reply.detail)
    text = _FENCE.sub("", reply.text.strip())
    try:  # strict=False: a raw line break inside a string (llama.cpp's JSON grammar allows one) is no JSON error
        data = json.loads(text, strict=False)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        try:
            data = json.loads(text[start : end + 1], strict=False) if 0 <= start < end else None
        except json.JSONDecodeError:
            data = None
        if data is None:
            reason = "truncated_output" if reply.finish_reason == "length" else "malformed_json"
            return Failure(reason, reply.text[:80])
    try:
        return model.model_validate(data)
    except PydanticValidationError as e:
        first = e.errors()[0]
        return Failure("schema_mismatch", f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"[:120])


def _data(obj: object) -> str:
    """JSON for a prompt, with anything that looks like our own delimiters defused."""
    return _DELIMS.sub("", json.dumps(obj, ensure_ascii=False, indent=1))


class OpenAIBackend:
    """Proposals from a chat model, through the cached, retrying client."""

    name = "openai"
    batched = True

    def __init__(self, settings: LLMSettings, cache: LLMCache, versions: dict[str, str], offline: bool = False,
                 quiet: bool = False, task_prompt_files: dict[str, str] | None = None, engine: str = "local",
                 workers: int | None = None):
        """`versions`: the stage's prompts by name ("categorise": "v1"); `task_prompt_files`: a comparison task's
        own prompt file by task name (its sentences are written with it instead of the generic one); `engine`,
        `workers`: where the requests are asked from (LLMClient)."""
        self.settings = settings
        self.model = settings.model
        self.client = LLMClient(settings, cache, offline=offline, quiet=quiet, engine=engine, workers=workers)
        self.prompts: dict[str, Prompt] = {name: load_prompt(name, version) for name, version in versions.items()}
        self.prompts.update({f"task:{task}": load_prompt_file(path) for task, path in (task_prompt_files or {}).items()})
        self.prompt_versions = prompt_versions(self.prompts)

    def close(self) -> None:
        self.client.cache.close()

    @property
    def stats(self) -> dict:
        return dict(self.client.stats)

    def propose_categories(self, batches: list[list[ClipText]]) -> dict[str, CategoryProposal | Failure]:
        prompt = self.prompts["categorise"]
        reqs = []
        for batch in batches:
            data = [c.as_data(f"c{i + 1}") for i, c in enumerate(batch)]
            unit = f"clip {batch[0].clip_id}" + (f" (+{len(batch) - 1} in its batch)" if len(batch) > 1 else "")
            reqs.append(ChatRequest(unit, prompt.id, prompt.render(n=str(len(batch)), clips=_data(data)), "categorise",
                                    SCHEMAS["categorise"], _categorise_bounds(len(batch))))
        out: dict[str, CategoryProposal | Failure] = {}
        for batch, reply in zip(batches, self.client.run(reqs, desc="categorise")):
            parsed = parse_reply(reply, CategoriseReply)
            by_local = {}
            if isinstance(parsed, CategoriseReply):
                for entry in parsed.clips:
                    by_local.setdefault(entry.id.strip(), entry)  # first answer for an id wins; unknown ids are ignored
            for i, clip in enumerate(batch):
                if isinstance(parsed, Failure):
                    out[clip.clip_id] = parsed
                else:
                    entry = by_local.get(f"c{i + 1}")
                    out[clip.clip_id] = entry if entry is not None else Failure("missing_in_reply", f"no entry for c{i + 1}")
        return out

    def propose_animal_items(self, clips: list[tuple[ClipText, str]]) -> dict[str, AnimalProposal | Failure]:
        prompt = self.prompts["animal_item"]
        reqs = [ChatRequest(f"clip {c.clip_id}", prompt.id, prompt.render(clip=_data(c.as_data("c1")), animal=source),
                            "animal_item", SCHEMAS["animal_item"], BOUNDED_SCHEMAS["animal_item"]) for c, source in clips]
        return {c.clip_id: parse_reply(r, AnimalProposal) for (c, _), r in zip(clips, self.client.run(reqs, desc="animal items"))}

    def sentence_prompt(self, task: str) -> Prompt:
        """The prompt a task's sentences are written with: the task's own, else the stage's generic one."""
        return self.prompts.get(f"task:{task}") or self.prompts["comparison_sentence"]

    def propose_sentences(self, pairs: list[PairText]) -> dict[str, SentenceProposal | Failure]:
        reqs = []
        for p in pairs:
            prompt = self.sentence_prompt(p.task)
            # the task's first template with this pair's names: a shape a small model can follow (a larger one rephrases)
            template = p.templates[0] if p.templates else "The sound of a {a} is typically [MASK] than the sound of a {b}."
            example = fill_template(template, p.source_a, p.source_b)
            msgs = prompt.render(dimension=p.dimension, choices=json.dumps(list(p.choices)), example=example, pair=_data(p.as_data()))
            reqs.append(ChatRequest(f"pair {p.pair_id}", prompt.id, msgs, "comparison_sentence", SCHEMAS["comparison_sentence"],
                                    _sentence_bounds(p.choices)))
        return {p.pair_id: parse_reply(r, SentenceProposal) for p, r in zip(pairs, self.client.run(reqs, desc="sentences"))}
