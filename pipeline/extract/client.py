"""The one LLM client: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp server, OpenAI).

Endpoint from OPENAI_BASE_URL / OPENAI_API_KEY, model from a flag > AUDITORYBENCH_LLM_MODEL > params.yaml.
Concurrency that adapts to the endpoint (`AdaptiveLimit`: starts at one request, grows while answers come back well
within the timeout, halves on timeouts, 429s and 503s, up to `concurrency`), a per-request timeout, retries with
exponential backoff and jitter on 429 / 5xx / timeouts / dropped connections (honouring Retry-After), a retry budget
shared by the run, and the content-addressed cache in front of everything. A failure of the endpoint (connection
refused or dropped, timeout, 429 / 5xx / 408 / 409 after the retries, a 200 that is no chat completion: `INFRA_ERRORS`)
says nothing about the clip: the stage leaves that unit pending instead of rejecting it (stages.stop_if_pending). After
`max_consecutive_failures` failed tries in a row, run-wide, with no answer between them, the client takes the endpoint
as down and sends nothing more: every request still to ask returns `llm_endpoint_down` at once, so a dead endpoint
stops a stage in seconds, not after six tries of every clip. Structured output: json_schema (the
schema generated from the reply's pydantic model), falling back to json_object and then to JSON asked for in the
prompt alone when the server refuses a mode (400/422); every reply is parsed into pydantic either way. One request's failure is returned as data, never raised, so it
cannot lose another's result. The API key is read from the environment at call time and never stored or printed.

Engines (a run option, like everywhere: never in a key): `local` asks from this process; `ray` maps the requests the
cache does not hold over Ray actors (`workers` of them, pipeline.engines), each with its own client and its own
AdaptiveLimit, so at most `concurrency` requests are in flight per worker (the retry budget is per worker too); the
answers come back here and are cached as each batch arrives, so a killed run keeps what was answered.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from benchmark.errors import ConfigError, StageError
from pipeline.extract.cache import LLMCache, cache_key

__all__ = ["LLMSettings", "ChatRequest", "ChatReply", "LLMClient", "AskOnWorker", "AdaptiveLimit", "redact_url",
           "STRUCTURED_MODES", "INFRA_ERRORS", "endpoint_name"]

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "text")
_FALLBACK = {"json_schema": "json_object", "json_object": "text"}  # what `auto` tries when a server refuses a mode
_MODE_ORDER = ("json_schema", "json_object", "text")
_RETRY_STATUS = {408, 409, 429}
# failures of the endpoint, not of the unit asked: never a reject; the unit stays pending and a rerun asks it again
INFRA_ERRORS = frozenset({"llm_rate_limited", "llm_server_error", "llm_timeout", "llm_connection_error", "llm_http_error",
                          "llm_protocol_error", "llm_endpoint_down"})


def redact_url(url: str) -> str:
    """An endpoint safe to log: no user:password, no query string."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def endpoint_name(base_url: str) -> str:
    """The endpoint as errors name it: the redacted base URL, or the openai package's default."""
    return redact_url(base_url) or "https://api.openai.com/v1"


@dataclass(frozen=True)
class LLMSettings:
    model: str
    base_url: str = ""  # "" = the openai package's default (api.openai.com)
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5  # per request
    retry_budget: int = 500  # retries across the whole run
    # failed tries in a row (no answer between them) after which the endpoint is taken as down: 48 = the default 8
    # requests in flight, each through its own 1 + 5 tries (about 15 s of backoff), so a blip shorter than one
    # request's retries never trips it, and a dead endpoint stops the stage after about 50 tries, not 6 per clip
    max_consecutive_failures: int = 48
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 512
    structured_output: str = "auto"  # auto | json_schema | json_object | text

    @classmethod
    def from_params(cls, params: dict, section: str = "extract") -> LLMSettings:
        """Resolve model (params["model_override"] from a flag > $AUDITORYBENCH_LLM_MODEL > params["model"]) and
        base URL (params["base_url_override"] > $OPENAI_BASE_URL > params["base_url"]); other keys from params."""
        model = params.get("model_override") or os.environ.get("AUDITORYBENCH_LLM_MODEL") or params.get("model") or ""
        if not model:
            raise ConfigError(f"{section}: no LLM model for the openai backend: pass --model, set AUDITORYBENCH_LLM_MODEL "
                              f"or {section}.model in params.yaml")
        base_url = params.get("base_url_override") or os.environ.get("OPENAI_BASE_URL") or params.get("base_url") or ""
        kw = {}
        for f in fields(cls):
            if f.name not in ("model", "base_url") and params.get(f.name) is not None:
                try:  # 0 and 0.0 must give the same cache key
                    kw[f.name] = type(f.default)(params[f.name])
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"{section}.{f.name}: {params[f.name]!r} is not a {type(f.default).__name__}") from e
        s = cls(model=str(model), base_url=str(base_url), **kw)
        if s.structured_output not in STRUCTURED_MODES:
            raise ConfigError(f"{section}.structured_output: {s.structured_output!r} is not one of {', '.join(STRUCTURED_MODES)}")
        if s.concurrency < 1 or s.timeout_s <= 0 or s.max_retries < 0 or s.max_consecutive_failures < 1:
            raise ConfigError(f"{section}: concurrency must be >= 1, timeout_s > 0, max_retries >= 0, "
                              "max_consecutive_failures >= 1")
        return s

    def sampling(self) -> dict:
        """What goes into the cache key besides model, prompt version and messages."""
        return {"temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens}

    def public(self) -> dict:
        """For manifests: every setting, the endpoint redacted."""
        d = asdict(self)
        d["base_url"] = redact_url(self.base_url)
        return d


@dataclass(frozen=True)
class ChatRequest:
    unit: str  # what the request is for, named in errors ("clip freesound/1", "pair ab12")
    prompt_version: str
    messages: list[dict]
    schema_name: str
    schema: dict  # strict (json_schema)
    bounded_schema: dict | None = None  # with string/array bounds, for json_object (a grammar); else `schema`


@dataclass
class ChatReply:
    text: str = ""
    finish_reason: str = ""
    error: str = ""  # "" when the server answered; else llm_rate_limited | llm_server_error | llm_timeout | ... (INFRA_ERRORS)
    # or llm_bad_request (a 4xx about this request)
    detail: str = ""
    cached: bool = False


@dataclass
class _Budget:
    left: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self) -> bool:
        async with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class AdaptiveLimit:
    """How many requests may be in flight: additive increase, multiplicative decrease (as TCP's congestion window).

    Starts at one request and grows (by one per quick answer until the first sign of overload, then by one per
    window) while answers come back within `fast_frac` of the timeout; halves on a timeout, a 429 or a 503, and on
    an answer slower than `slow_frac` of the timeout, so a server that serves one request at a time is never sent
    requests that would wait past the timeout in its queue."""

    def __init__(self, max_limit: int, timeout_s: float, fast_frac: float = 0.25, slow_frac: float = 0.5):
        self.max_limit = max(1, int(max_limit))
        self.timeout_s = timeout_s
        self.fast_frac, self.slow_frac = fast_frac, slow_frac
        self.limit = 1.0
        self.threshold = float(self.max_limit)  # slow start below it, additive increase above
        self.in_flight = 0
        self.peak = 1
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    async def release(self, overloaded: bool, latency_s: float) -> None:
        """A request ended: `overloaded` for a timeout / 429 / 503; else its latency decides."""
        async with self._cond:
            self.in_flight -= 1
            if overloaded or latency_s > self.slow_frac * self.timeout_s:
                self.limit = max(1.0, self.limit / 2)
                self.threshold = self.limit
            elif latency_s < self.fast_frac * self.timeout_s:
                step = 1.0 if self.limit < self.threshold else 1.0 / self.limit
                self.limit = min(float(self.max_limit), self.limit + step)
            self.peak = max(self.peak, int(self.limit))
            self._cond.notify_all()


class LLMClient:
    """Ask many chat requests concurrently, through the cache; `stats` counts what really went over the wire."""

    def __init__(self, settings: LLMSettings, cache: LLMCache | None, offline: bool = False, quiet: bool = False,
                 engine: str = "local", workers: int | None = None):
        """cache None: a Ray worker's client, which answers to the driver's (the driver caches)."""
        self.settings = settings
        self.cache = cache
        self.offline = offline
        self.quiet = quiet
        self.engine, self.workers = engine, workers
        self.mode = "json_schema" if settings.structured_output == "auto" else settings.structured_output
        self.stats = {"requests_sent": 0, "answered": 0, "cache_hits": 0, "retries": 0, "failed": 0, "timeouts": 0,
                      "rate_limited": 0, "schema_fallbacks": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "peak_concurrency": 0, "not_sent": 0, "endpoint_down": 0}
        self._retry_budget_left = settings.retry_budget
        self._window = (1.0, float(max(1, settings.concurrency)))  # AdaptiveLimit's (limit, threshold) between runs
        self.failures_in_a_row = 0  # failed tries since the last answer, run-wide
        self.down = ""  # why the endpoint was taken as down ("" while it is up): nothing more is sent
        self.latencies_s: list[float] = []  # of every answered try
        self._asking_s = 0.0  # wall time with requests to ask (for the rate)

    @property
    def endpoint(self) -> str:
        return endpoint_name(self.settings.base_url)

    def timing(self) -> dict:
        """Latency p50 / p95 of the answered tries, answers per second while there were requests to ask, and the
        concurrency the adaptive limit settled at (its window at the end of the last run)."""
        lat = sorted(self.latencies_s)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None

        rate = self.stats["answered"] / self._asking_s if self._asking_s > 0 else None
        return {"latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95), "answers_per_s": round(rate, 3) if rate else rate,
                "concurrency_settled": int(self._window[0]), "answered": self.stats["answered"]}

    def key(self, req: ChatRequest) -> str:
        """The answer's cache key: model, prompt, messages, sampling, and the schemas the reply was constrained to (a
        grammar-constrained answer is another answer)."""
        asked = {**self.settings.sampling(), "structured_output": self.settings.structured_output, "schema": req.schema,
                 "bounded_schema": req.bounded_schema}
        return cache_key(self.settings.model, req.prompt_version, req.messages, asked)

    def run(self, requests: list[ChatRequest], desc: str = "llm") -> list[ChatReply]:
        """Answers in request order. Offline: cache only, failing on the first request with no cached answer."""
        replies: list[ChatReply | None] = [None] * len(requests)
        todo = []
        for i, req in enumerate(requests):
            hit = self.cache.get(self.key(req))
            if hit is not None:
                replies[i] = ChatReply(text=hit.get("text", ""), finish_reason=hit.get("finish_reason", ""), cached=True)
                self.stats["cache_hits"] += 1
            elif self.offline:
                raise StageError(f"offline: no cached LLM answer for {req.unit} (prompt {req.prompt_version}, key "
                                 f"{self.key(req)[:16]}) in {self.cache.dir}; rerun without --offline to ask the model")
            else:
                todo.append(i)
        if todo:
            asked = [requests[i] for i in todo]
            answered = self._ask_on_engine(asked, desc) if self.engine != "local" else asyncio.run(self._ask_all(asked, desc))
            for i, reply in zip(todo, answered):
                replies[i] = reply
        return [r if r is not None else ChatReply(error="llm_missing") for r in replies]

    def _ask_on_engine(self, requests: list[ChatRequest], desc: str) -> list[ChatReply]:
        """The requests asked by the engine's workers (batches of 2 x concurrency: a worker keeps up to `concurrency`
        of its batch in flight); each answer is cached here as its batch comes back. Replies in request order."""
        from pipeline.engines import map_units

        replies: list[ChatReply] = [ChatReply(error="llm_missing")] * len(requests)
        bar = tqdm(total=len(requests), desc=f"{desc} ({self.engine})", disable=self.quiet, unit="req")
        t0 = time.monotonic()
        try:
            for j, (reply, stats, mode) in map_units(AskOnWorker(self.settings, self.mode), requests, engine=self.engine,
                                                     workers=self.workers, batch_size=2 * self.settings.concurrency):
                replies[j] = reply
                if not reply.error:
                    self._put(requests[j], reply)
                if stats:  # a batch's counts ride on its last reply
                    for k, v in stats.items():
                        self.stats[k] = max(self.stats[k], v) if k == "peak_concurrency" else self.stats[k] + v
                if _MODE_ORDER.index(mode) > _MODE_ORDER.index(self.mode):
                    self.mode = mode  # a worker found that the server refuses a mode: later requests start lower
                bar.update(1)
        finally:
            self._asking_s += time.monotonic() - t0
            bar.close()
        return replies

    def _put(self, req: ChatRequest, reply: ChatReply) -> None:
        if self.cache is not None:
            self.cache.put(self.key(req), {"text": reply.text, "finish_reason": reply.finish_reason,
                                           "model": self.settings.model, "prompt_version": req.prompt_version})

    async def _ask_all(self, requests: list[ChatRequest], desc: str) -> list[ChatReply]:
        s = self.settings
        client = openai.AsyncOpenAI(base_url=s.base_url or None, api_key=os.environ.get("OPENAI_API_KEY") or "none",
                                    timeout=s.timeout_s, max_retries=0)
        limit = AdaptiveLimit(s.concurrency, s.timeout_s)
        limit.limit, limit.threshold = self._window  # the endpoint is the same as in the last run: start where it ended
        budget = _Budget(self._retry_budget_left)
        bar = tqdm(total=len(requests), desc=desc, disable=self.quiet, unit="req")
        t0 = time.monotonic()

        def show() -> None:
            bar.set_postfix_str(f"in flight {limit.in_flight}/{int(limit.limit)}, timeouts {self.stats['timeouts']}, "
                                f"retries {self.stats['retries']}", refresh=False)

        try:
            async def one(req: ChatRequest) -> ChatReply:
                reply = await self._ask(client, limit, budget, req, show)
                bar.update(1)
                return reply

            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            self.stats["peak_concurrency"] = max(self.stats["peak_concurrency"], limit.peak)
            self._window = (limit.limit, limit.threshold)
            self._asking_s += time.monotonic() - t0
            bar.close()
            self._retry_budget_left = budget.left
            await client.close()

    async def _ask(self, client: openai.AsyncOpenAI, limit: AdaptiveLimit, budget: _Budget, req: ChatRequest,
                   show: Callable[[], None]) -> ChatReply:
        s = self.settings
        attempt = 0
        while True:
            if self.down:  # taken as down while this request waited (in line or in its backoff): nothing is sent
                return self._endpoint_down(req)
            await limit.acquire()
            if self.down:
                await limit.release(False, 0.0)
                return self._endpoint_down(req)
            mode = self.mode  # read once through the gate: a fallback found while this request waited applies to it
            show()
            started, overloaded = time.monotonic(), False
            self.stats["requests_sent"] += 1
            try:
                text, finish = await self._call(client, req, mode)
            except openai.APIStatusError as e:
                code = e.status_code
                overloaded = code in (429, 503)
                if code in (401, 403):
                    raise ConfigError(f"{redact_url(s.base_url) or 'api.openai.com'}: authentication failed (HTTP {code}); "
                                      "check OPENAI_API_KEY") from None
                if code == 404:
                    raise ConfigError(f"{redact_url(s.base_url) or 'api.openai.com'}: model {s.model!r} or route not found "
                                      "(HTTP 404)") from None
                if code not in _RETRY_STATUS and code < 500:
                    self.failures_in_a_row = 0  # the server answered (about this request)
                if s.structured_output == "auto" and mode in _FALLBACK and _refuses_mode(e, mode):
                    if self.mode == mode:  # this server does not take the mode: the next one down, for every request
                        self.mode = _FALLBACK[mode]
                        self.stats["schema_fallbacks"] += 1
                    continue
                if code not in _RETRY_STATUS and code < 500:
                    self.stats["failed"] += 1
                    return ChatReply(error="llm_bad_request", detail=f"{req.unit}: HTTP {code}")
                kind = "llm_rate_limited" if code == 429 else ("llm_server_error" if code >= 500 else "llm_http_error")
                self.stats["rate_limited"] += code == 429
                retry_after = _retry_after_s(e.response)
                detail = f"HTTP {code}"
            except openai.APITimeoutError:
                overloaded = True
                self.stats["timeouts"] += 1
                kind, retry_after, detail = "llm_timeout", None, f"no answer within {s.timeout_s} s"
            except openai.APIConnectionError as e:
                kind, retry_after, detail = "llm_connection_error", None, type(e.__cause__ or e).__name__
            except (openai.APIError, _EmptyReply, ValueError) as e:  # a 200 whose body is not a chat completion
                self.stats["failed"] += 1
                self._failed_try("llm_protocol_error", type(e).__name__)
                return ChatReply(error="llm_protocol_error", detail=f"{req.unit}: {type(e).__name__}")
            else:
                reply = ChatReply(text=text, finish_reason=finish)
                self._put(req, reply)
                self.stats["answered"] += 1
                self.failures_in_a_row = 0
                self.latencies_s.append(time.monotonic() - started)
                return reply
            finally:
                await limit.release(overloaded, time.monotonic() - started)
                show()
            if self._failed_try(kind, detail):
                self.stats["failed"] += 1
                return ChatReply(error=kind, detail=f"{req.unit}: {detail}; {self.down}")
            if attempt >= s.max_retries or not await budget.take():
                self.stats["failed"] += 1
                why = "retry budget spent" if attempt < s.max_retries else f"gave up after {attempt + 1} tries"
                return ChatReply(error=kind, detail=f"{req.unit}: {detail}; {why}")
            attempt += 1
            self.stats["retries"] += 1
            show()
            await asyncio.sleep(self._delay_s(attempt, retry_after))

    def _failed_try(self, kind: str, detail: str) -> bool:
        """Count a failed try of the endpoint; True when it is (now) taken as down."""
        self.failures_in_a_row += 1
        if not self.down and self.failures_in_a_row >= self.settings.max_consecutive_failures:
            self.down = (f"taken as down after {self.failures_in_a_row} failed tries in a row (max_consecutive_failures; "
                         f"the last: {kind}, {detail})")
            self.stats["endpoint_down"] = 1
        return bool(self.down)

    def _endpoint_down(self, req: ChatRequest) -> ChatReply:
        self.stats["failed"] += 1
        self.stats["not_sent"] += 1
        return ChatReply(error="llm_endpoint_down", detail=f"{req.unit}: not sent; the endpoint was {self.down}")

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter (half fixed, half random), never shorter than the server's Retry-After."""
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1))
        delay = base * (0.5 + 0.5 * random.random())
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, s.max_retry_after_s))
        return delay

    async def _call(self, client: openai.AsyncOpenAI, req: ChatRequest, mode: str) -> tuple[str, str]:
        s = self.settings
        body: dict = {"model": s.model, "messages": req.messages, "temperature": s.temperature, "seed": s.seed,
                      "max_tokens": s.max_tokens}
        if mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": req.schema_name, "schema": req.schema, "strict": True}}
        elif mode == "json_object":  # llama-cpp-python's server turns "schema" into a grammar; others ignore it
            body["response_format"] = {"type": "json_object", "schema": req.bounded_schema or req.schema}
        # The client's own POST: the wire format of chat.completions.create / .parse (response_format json_schema), the
        # same timeouts and error classes, without their type-driven walk over every message (several ms of CPU per
        # request, which caps concurrency); the reply is parsed into the pydantic model by llm.parse_reply.
        resp = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        if not getattr(resp, "choices", None):
            raise _EmptyReply("no choices")
        if resp.usage is not None:
            self.stats["prompt_tokens"] += resp.usage.prompt_tokens or 0
            self.stats["completion_tokens"] += resp.usage.completion_tokens or 0
        choice = resp.choices[0]
        return (choice.message.content or ""), (choice.finish_reason or "")


@dataclass(frozen=True)
class AskOnWorker:
    """The factory of a worker's batch function (pipeline.engines): one client per worker (its own AdaptiveLimit and
    retry budget, no cache), mapping a batch of ChatRequests to (reply, the batch's stats on its last reply, mode)."""

    settings: LLMSettings
    mode: str

    def __call__(self) -> Callable[[list], list]:
        client = LLMClient(self.settings, None, quiet=True)
        client.mode = self.mode

        def ask(requests: list[ChatRequest]) -> list[tuple[ChatReply, dict | None, str]]:
            before = dict(client.stats)
            replies = asyncio.run(client._ask_all(requests, "llm"))
            stats = {k: v if k == "peak_concurrency" else v - before[k] for k, v in client.stats.items()}
            return [(r, stats if i == len(replies) - 1 else None, client.mode) for i, r in enumerate(replies)]

        return ask


def _refuses_mode(e: openai.APIStatusError, mode: str) -> bool:
    """The server does not take this response_format: a 400/422, or a 500 whose message names it (llama-cpp-python's
    server answers json_schema with a 500 carrying its validation error)."""
    if e.status_code in (400, 422):
        return True
    text = f"{e.message} {e.body}"
    return e.status_code == 500 and (mode in text or "response_format" in text)


class _EmptyReply(Exception):
    """A 200 answer without choices."""


def _retry_after_s(response: object) -> float | None:
    """Seconds from Retry-After-Ms / Retry-After (seconds or an HTTP date), or None."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None
