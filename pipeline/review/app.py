"""The review web app (Starlette, ASGI): one module of routes over a ReviewTarget and its ReviewStore.

Routes (every one but /static needs a reviewer's session; a personal link `/?token=…` opens one and sets an HttpOnly,
SameSite=Lax cookie named after the server's port, then redirects to a URL without the token):

    GET  /                    → the reviewer's next undecided item
    GET  /item/{item_id}      the item page: sentence, answer, spans, measured values, captions, a player per clip
    GET  /next?after={id}     → the next undecided item after that one (wrapping), or /done
    GET  /audio/{item_id}/{n} clip n of the item, read from its tar shard at its recorded offset; Range → 206
    POST /api/decision        JSON {item_id, decision, answer, fluency, comment}; written to SQLite at once
    GET  /stats               counts per reviewer, agreement (Cohen's κ, Fleiss' κ, Krippendorff's α), fluency means
    GET  /static/{name}       the page's script and style sheet (a fixed set, held in memory; no session needed, so
                              the "ask for your link" page is styled too)

POSTs also need the session's CSRF token in an X-CSRF-Token header, a JSON body, and (where the browser sends them)
Origin equal to the page's own and Sec-Fetch-Site `same-origin`. No request value is ever used as a path. Every store
call runs on the thread pool, never on the event loop: a write waiting for SQLite's lock delays no other request.
Bad input is a 4xx with a one-line reason, never a 500.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.filter import REVIEW_DECISIONS
from pipeline.review.agreement import agreement_summary
from pipeline.review.export import comments_table, decisions_table, ratings_of
from pipeline.review.store import DECISIONS, Decision, ReviewStore
from pipeline.review.target import ReviewTarget

__all__ = ["create_app", "cookie_name", "parse_range", "COOKIE", "LOOPBACK_HOSTS"]

COOKIE = "ab_review_session"  # + "_<port>": see cookie_name
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_HERE = Path(__file__).resolve().parent
_STATIC = {name: ((_HERE / "static" / name).read_bytes(), media) for name, media in
           (("review.js", "text/javascript; charset=utf-8"), ("review.css", "text/css; charset=utf-8"))}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_RANGE_DIGITS = 18  # 10^18 bytes: past any clip, and far below Python's int-parsing limit (4,300 digits)
_MAX_BODY = 16 << 10
_MAX_COMMENT = 2000


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(_HERE / "templates")), autoescape=select_autoescape(["html"]))
    env.filters["num"] = _num
    return env


def _num(v, fmt: str = "{:.1f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def cookie_name(request: Request) -> str:
    """The session cookie's name for this server: ab_review_session_<port>. Browsers share a host's cookies across its
    ports, so with one name two review targets open in one browser (two servers on 127.0.0.1) would sign each other out."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    return f"{COOKIE}_{port}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) of a single `bytes=` range, None for no (or an ignorable) header, "unsatisfiable" for
    a range that lies outside the file. A position of more than 18 digits raises ValueError (a 400)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: RFC 9110 lets a server answer with the whole file
    if max(len(m.group(1)), len(m.group(2))) > _MAX_RANGE_DIGITS:
        raise ValueError(f"Range header: a byte position of more than {_MAX_RANGE_DIGITS} digits")
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else "unsatisfiable"
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def create_app(target: ReviewTarget, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app for one review target. allowed_hosts: Host header values accepted (None: any; the CLI passes the
    loopback names when it binds to loopback, which also stops DNS-rebinding pages)."""
    env = _env()
    local = threading.local()
    total = len(target.items)

    def store() -> ReviewStore:
        s = getattr(local, "store", None)
        if s is None:
            s = local.store = ReviewStore(target.db_path)
        return s

    def session_of(request: Request) -> tuple[str, str] | None:
        """(reviewer, csrf) of the request's session cookie, or None."""
        sid = request.cookies.get(cookie_name(request))
        return store().session(sid) if sid else None

    def page(name: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status, headers=_HEADERS)

    def refuse(status: int, message: str) -> Response:
        return page("refused.html", status=status, message=message)

    def authed(fn: Callable) -> Callable:
        """Resolve the reviewer from the session cookie (or open a session from ?token=), else refuse."""
        @wraps(fn)
        def inner(request: Request):
            token = request.query_params.get("token")
            if token is not None:
                reviewer = store().reviewer_for_token(token)
                if reviewer is None:
                    return refuse(403, "This link's token is not valid (it may have been replaced). Ask for a new link.")
                sid, _ = store().open_session(reviewer)
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                resp = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), status_code=303, headers=_HEADERS)
                # Lax, not Strict: a link clicked in a web mail must arrive signed in after this redirect; cross-site
                # POSTs are stopped by the CSRF token and the Origin check, not by the cookie
                resp.set_cookie(cookie_name(request), sid, httponly=True, samesite="lax", path="/",
                                secure=request.url.scheme == "https")
                return resp
            session = session_of(request)
            if session is None:
                return refuse(401, "This page needs your personal review link: ask for one "
                                   "(`auditorybench review add-reviewer NAME` prints it).")
            return fn(request, session[0], session[1])
        return inner

    def progress(reviewer: str) -> dict:
        done = len(store().decided_ids(reviewer) & target.position.keys())
        return {"done": done, "total": total, "percent": round(100 * done / total, 1) if total else 100.0}

    def next_undecided(reviewer: str, after: str | None) -> str | None:
        decided = store().decided_ids(reviewer)
        ids = list(target.items["id"])
        start = target.position[after] + 1 if after in target.position else 0
        for item_id in ids[start:] + ids[:start]:
            if item_id not in decided:
                return item_id
        return None

    @authed
    def home(request: Request, reviewer: str, csrf: str):
        item_id = next_undecided(reviewer, None)
        return RedirectResponse(f"/item/{item_id}" if item_id else "/done", status_code=303, headers=_HEADERS)

    @authed
    def next_item(request: Request, reviewer: str, csrf: str):
        item_id = next_undecided(reviewer, request.query_params.get("after"))
        return RedirectResponse(f"/item/{item_id}" if item_id else "/done", status_code=303, headers=_HEADERS)

    @authed
    def done(request: Request, reviewer: str, csrf: str):
        return page("done.html", reviewer=reviewer, progress=progress(reviewer), csrf=csrf)

    @authed
    def item_page(request: Request, reviewer: str, csrf: str):
        item_id = request.path_params["item_id"]
        item = target.item(item_id)
        if item is None:
            return refuse(404, "No such item in this review.")
        pos = target.position[item_id]
        ids = target.items["id"]
        sides = target.sides(item)
        clips = [{"n": n, "clip_id": c, **(target.clips.get(c) or {}), "side": sides[n] if sides else "", "key": _clip_key(n),
                  "playable": target.audio_source(item_id, n) is not None} for n, c in enumerate(item["clip_ids"])]
        current = store().get(item_id, reviewer)
        fix_choices = [a for a in target.choices.get(item["task"], []) if a != item["answer"]]
        return page("item.html", reviewer=reviewer, csrf=csrf, item=item, clips=clips, pos=pos, total=total,
                    prev_id=ids.iloc[pos - 1] if pos > 0 else None, next_id=ids.iloc[pos + 1] if pos + 1 < total else None,
                    sentence=_sentence_parts(item["sentence"], list(item["spans"])), gap=_gap(item),
                    current=current, fix_choices=fix_choices, progress=progress(reviewer), kind=target.kind)

    @authed
    def audio(request: Request, reviewer: str, csrf: str):
        src = target.audio_source(request.path_params["item_id"], request.path_params["n"])
        if src is None:
            return Response("no such clip", status_code=404, headers=_HEADERS)
        headers = {**_HEADERS, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
        try:
            rng = parse_range(request.headers.get("range"), src.size)
        except ValueError as e:
            return Response(str(e), status_code=400, headers=_HEADERS)
        if rng == "unsatisfiable":
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{src.size}"})
        start, end = rng if rng else (0, src.size - 1)
        with open(src.path, "rb") as f:
            f.seek(src.offset + start)
            data = f.read(end - start + 1)
        if len(data) != end - start + 1:
            return Response(f"clip truncated in {src.path.name}", status_code=500, headers=_HEADERS)
        if rng:
            return Response(data, status_code=206, media_type=src.media_type,
                            headers={**headers, "Content-Range": f"bytes {start}-{end}/{src.size}"})
        return Response(data, media_type=src.media_type, headers=headers)

    async def decision(request: Request):
        # async only to read the body; the store's calls (which can wait up to 30 s for SQLite's write lock) run on
        # the thread pool, so a locked write stalls this request and no other
        session = await run_in_threadpool(session_of, request)
        if session is None:
            return JSONResponse({"error": "not signed in: open your personal review link"}, status_code=401, headers=_HEADERS)
        reviewer, csrf = session
        problem = _cross_site_problem(request, csrf)
        if problem:
            return JSONResponse({"error": problem}, status_code=403, headers=_HEADERS)
        body = await request.body()
        if len(body) > _MAX_BODY:
            return JSONResponse({"error": "request body too large"}, status_code=413, headers=_HEADERS)
        try:
            d = _decision_from(_json_body(body), reviewer, target)
        except (ValueError, TypeError, KeyError) as e:
            return JSONResponse({"error": str(e)}, status_code=422, headers=_HEADERS)
        try:
            saved = await run_in_threadpool(save, d)
        except sqlite3.OperationalError as e:  # the write lock stayed taken past the store's timeout
            return JSONResponse({"error": f"not saved, try again: {e}"}, status_code=503, headers=_HEADERS)
        return JSONResponse(saved, headers=_HEADERS)

    def save(d: Decision) -> dict:
        store().put(d)
        return {"saved": True, "item_id": d.item_id, "decision": d.decision, "answer": d.answer, "fluency": d.fluency,
                "progress": progress(d.reviewer)}

    @authed
    def stats(request: Request, reviewer: str, csrf: str):
        decisions = store().decisions()
        per = {}
        for r in store().reviewers():
            mine = [d for d in decisions if d.reviewer == r]
            flu = [d.fluency for d in mine if d.fluency]
            per[r] = {"decided": sum(d.decision is not None for d in mine),
                      **{k: sum(d.decision == k for d in mine) for k in DECISIONS},
                      "fluency_n": len(flu), "fluency_mean": round(sum(flu) / len(flu), 2) if flu else None}
        table = decisions_table(decisions)
        verdicts = {k: int((table["decision"] == k).sum()) for k in REVIEW_DECISIONS}
        all_flu = [d.fluency for d in decisions if d.fluency]
        return page("stats.html", reviewer=reviewer, csrf=csrf, per=per, total=total, verdicts=verdicts,
                    agreement=agreement_summary(ratings_of(decisions)), comments=comments_table(decisions),
                    fluency_mean=round(sum(all_flu) / len(all_flu), 2) if all_flu else None, kind=target.kind)

    def static(request: Request):  # no session: the same two files for everyone, and the 401 page needs its style
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404, headers=_HEADERS)
        body, media = _STATIC[name]
        return Response(body, media_type=media, headers={**_HEADERS, "Cache-Control": "no-cache"})

    routes = [Route("/", home), Route("/next", next_item), Route("/done", done), Route("/item/{item_id}", item_page),
              Route("/audio/{item_id}/{n:int}", audio), Route("/api/decision", decision, methods=["POST"]),
              Route("/stats", stats), Route("/static/{name}", static)]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware)


def _cross_site_problem(request: Request, csrf: str) -> str | None:
    """Why a POST looks cross-site (None when it does not): wrong or missing CSRF token, another Origin, a
    cross-site fetch, or a body that is not JSON (a plain HTML form cannot send one)."""
    sent = request.headers.get("x-csrf-token", "")
    if not secrets.compare_digest(sent.encode(), csrf.encode()):
        return "missing or wrong CSRF token"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return f"cross-origin request from {origin}"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request (Sec-Fetch-Site: {site})"
    if not request.headers.get("content-type", "").startswith("application/json"):
        return "the body must be JSON"
    return None


def _json_body(body: bytes):
    """The parsed JSON body; ValueError (a 422) for one that is not JSON, not UTF-8, or nested too deep to parse."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"the body is not JSON: {str(e).splitlines()[0]}") from None


def _decision_from(data: dict, reviewer: str, target: ReviewTarget) -> Decision:
    """Validate a posted decision against the item it names: decision keep|drop|fix|null, a fix's answer one of the
    task's other answers, fluency 1-3 or null, a comment of at most 2,000 characters."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    item = target.item(str(data.get("item_id", "")))
    if item is None:
        raise ValueError("no such item")
    decision = data.get("decision")
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)} or null")
    answer = str(data.get("answer") or "") if decision == "fix" else ""
    if decision == "fix":
        valid = [a for a in target.choices.get(item["task"], []) if a != item["answer"]]
        if answer not in valid:
            raise ValueError(f"a fixed answer must be one of {valid}")
    fluency = data.get("fluency")
    if fluency is not None and (not isinstance(fluency, int) or isinstance(fluency, bool) or not 1 <= fluency <= 3):
        raise ValueError("fluency must be 1, 2, 3 or null")
    comment = str(data.get("comment") or "")
    if len(comment) > _MAX_COMMENT:
        raise ValueError(f"the comment is longer than {_MAX_COMMENT} characters")
    try:
        comment.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the comment is not valid Unicode (a lone surrogate at character {e.start})") from None
    return Decision(item["id"], reviewer, decision, answer, fluency, comment)


def _clip_key(n: int) -> str:
    """The key that plays clip n (0-based), as the page shows it: a, b, then ⇧3 … ⇧9 (Shift + digit, which plays
    clips 1–9 alike; review.js reads the key's position, so it works on every keyboard layout); "" past the ninth."""
    return "ab"[n] if n < 2 else f"⇧{n + 1}" if n < 9 else ""


def _sentence_parts(sentence: str, spans: list[str]) -> list[tuple[str, str]]:
    """The sentence as (kind, text) parts — kind "mask", "span" or "text" — for the template to mark up (escaped)."""
    marks = []
    low = sentence.lower()
    for span in spans:
        i = low.find(span.lower()) if span else -1
        if i >= 0:
            marks.append((i, i + len(span), "span"))
    i = sentence.find("[MASK]")
    if i >= 0:
        marks.append((i, i + len("[MASK]"), "mask"))
    parts, at = [], 0
    for start, end, kind in sorted(marks):
        if start < at:
            continue  # overlapping marks: keep the first
        parts += [("text", sentence[at:start]), (kind, sentence[start:end])]
        at = end
    parts.append(("text", sentence[at:]))
    return [p for p in parts if p[1]]


def _gap(item: dict) -> str:
    """The measured values of the two compared sounds (span1's first) and the gap between them, in the basis's terms."""
    a, b, basis = item.get("value1"), item.get("value2"), item.get("basis") or ""
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return ""
    s1, s2 = item.get("span1") or "1", item.get("span2") or "2"
    if basis in ("f0", "centroid") and a > 0 and b > 0:
        ratio = max(a, b) / min(a, b)
        return f"{basis}: {s1} {a:.1f} Hz vs {s2} {b:.1f} Hz — ratio {ratio:.2f} ({12 * math.log2(ratio):.1f} semitones)"
    if basis == "duration" and a > 0 and b > 0:
        return f"active duration: {s1} {a:.2f} s vs {s2} {b:.2f} s — ratio {max(a, b) / min(a, b):.2f}"
    if basis == "loudness":
        return f"mean loudness: {s1} {a:.1f} LUFS vs {s2} {b:.1f} LUFS — difference {abs(a - b):.1f} dB"
    return f"{basis}: {s1} {a:.3g} vs {s2} {b:.3g}"
