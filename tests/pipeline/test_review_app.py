"""The review app end to end: a small demo build, the real `auditorybench review` server on a free loopback port, plain
HTTP checks (tokens, CSRF, Range, bad input → 4xx, a request served while SQLite's write lock is held), and a headless
Debian chromium driven by Playwright through the reviewers' flow — play a clip, decide with the keyboard, reload, a
second reviewer, the stats page's κ, export, rebuild the release; every clip's key; two review targets in one browser."""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from benchmark.release_io import load_release
from benchmark.schema import item_id
from pipeline.reader import read_clip_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
STAGES = ("read", "measure", "extract", "split", "pairs", "write", "filter", "wiki", "index")


def _cli(env: dict, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"auditorybench {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> dict:
    """A small demo build (120 clips: loudness items with three clips and more; no index or wiki: the review needs neither) and its release before any review."""
    tmp = tmp_path_factory.mktemp("review")
    env = {**os.environ, "AUDITORYBENCH_DEMO_CORPUS_N_CLIPS": "120", "AUDITORYBENCH_RELEASE_CARDS_DIR": str(tmp / "cards")}
    corpus = tmp / "demo_corpus" / "freesound"
    _cli(env, "corpus", "--out", str(tmp / "demo_corpus"), "--quiet")
    common = ["--corpus", str(corpus), "--corpus-id", "demo", "--build-root", str(tmp / "build"), "--quiet"]
    for stage in STAGES:
        _cli(env, stage, *common)
    _cli(env, "release", *common, "--releases", str(tmp / "before"))
    return {"tmp": tmp, "env": env, "common": common, "dir": tmp / "build" / "demo", "before": tmp / "before" / "demo-1.0.0"}


@pytest.fixture(scope="module")
def server(build) -> dict:
    yield from _serve(build, build["dir"], ("ann", "bob"))


@pytest.fixture(scope="module")
def release_server(build) -> dict:
    """A second review target beside `server`: the release made before any review, on its own port."""
    yield from _serve(build, build["before"], ("ivy",), "--build-root", str(build["tmp"] / "build"))


def _serve(build: dict, target: Path, reviewers: tuple[str, ...], *extra: str):
    port = _free_port()
    urls = {name: _cli(build["env"], "review", "add-reviewer", name, str(target), "--port", str(port), *extra).strip()
            for name in reviewers}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "review", str(target), "--port", str(port), "--quiet", *extra],
                            env=build["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/", timeout=1)
        except urllib.error.HTTPError:
            break  # it answers (401: no token)
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"review server exited: {proc.stdout.read()}")
            time.sleep(0.1)
    from pipeline.review.target import load_target

    yield {"base": base, "urls": urls, "port": port, "target": load_target(target, build_root=build["tmp"] / "build")}
    proc.terminate()
    proc.wait(timeout=10)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _status(opener, url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, headers (case-insensitive), body) of one request."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_every_request_needs_a_token_and_posts_are_guarded(build, server) -> None:
    base, anon = server["base"], _opener()
    first = load_target_first(build)
    for path in ("/", "/stats", f"/item/{first['id']}", f"/audio/{first['id']}/0", "/next", "/done"):
        assert _status(anon, base + path)[0] == 401, path
    assert _status(anon, base + "/?token=not-a-token")[0] == 403
    code, _, body = _status(anon, base + "/api/decision", json.dumps({"item_id": first["id"], "decision": "drop"}).encode(),
                            {"Content-Type": "application/json"})
    assert code == 401 and b"not signed in" in body

    ann = _opener()
    code, _, page = _status(ann, server["urls"]["ann"])  # follows the redirect; the cookie now holds the session
    assert code == 200 and b'id="sentence"' in page and b"token=" not in page
    csrf = page.split(b'name="csrf-token" content="')[1].split(b'"')[0].decode()
    post = json.dumps({"item_id": first["id"], "decision": None, "fluency": 2}).encode()
    ok_headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    assert _status(ann, base + "/api/decision", post, {"Content-Type": "application/json"})[0] == 403  # no CSRF token
    assert _status(ann, base + "/api/decision", post, {**ok_headers, "X-CSRF-Token": "forged"})[0] == 403
    assert _status(ann, base + "/api/decision", post, {**ok_headers, "Origin": "http://evil.example"})[0] == 403
    assert _status(ann, base + "/api/decision", post, {**ok_headers, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert _status(ann, base + "/api/decision", post, {**ok_headers, "Content-Type": "text/plain"})[0] == 403
    bad = json.dumps({"item_id": first["id"], "decision": "fix", "answer": first["answer"]}).encode()
    assert _status(ann, base + "/api/decision", bad, ok_headers)[0] == 422  # a fix must change the answer
    assert _status(ann, base + "/api/decision", post, ok_headers)[0] == 200  # fluency only: not yet a decision
    # a Host other than loopback's (a DNS-rebinding page) is refused
    assert _status(ann, base + "/", headers={"Host": "evil.example"})[0] == 400


def test_the_refused_page_is_styled_without_a_session(server) -> None:
    """The 401 page links the style sheet and script; both are served to anyone (the same bytes for everyone)."""
    anon = _opener()
    code, _, page = _status(anon, server["base"] + "/stats")
    assert code == 401 and b'href="/static/review.css"' in page
    code, headers, css = _status(anon, server["base"] + "/static/review.css")
    assert code == 200 and headers["Content-Type"].startswith("text/css") and b".refused" in css
    code, headers, _ = _status(anon, server["base"] + "/static/review.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    assert _status(anon, server["base"] + "/static/app.py")[0] == 404


def _signed_in(server: dict, name: str) -> tuple[urllib.request.OpenerDirector, dict]:
    """A new reviewer's session on `server`: (opener holding the cookie, headers a POST needs)."""
    from pipeline.review.store import ReviewStore

    target = server["target"]
    with ReviewStore(target.db_path) as store:
        token = store.add_reviewer(name)
    opener = _opener()
    page = _status(opener, f"{server['base']}/?token={token}")[2]
    csrf = page.split(b'name="csrf-token" content="')[1].split(b'"')[0].decode()
    return opener, {"Content-Type": "application/json", "X-CSRF-Token": csrf}


# case → (where it goes, what is sent, the status, a word of the one-line reason); the first four gave a 500 before
BAD_INPUTS = {
    "Range end of 5,000 digits": ("range", "bytes=0-" + "9" * 5000, 400, "Range"),  # past Python's int-parsing limit
    "Range start of 5,000 digits": ("range", "bytes=" + "9" * 5000 + "-", 400, "Range"),
    "comment with a lone surrogate": ("post", '{"item_id": "%s", "fluency": 2, "comment": "ok \\ud800"}', 422, "surrogate"),
    "JSON nested 5,000 deep": ("post", "[" * 5000 + "]" * 5000, 422, "nested too deeply"),  # RecursionError
    "JSON cut short": ("post", '{"item_id": ', 422, "not JSON"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_with_a_one_line_reason(build, server, case: str) -> None:
    from pipeline.review.store import ReviewStore

    kind, sent, want_code, reason = BAD_INPUTS[case]
    base, item = server["base"], load_target_first(build)
    name = f"eve-{list(BAD_INPUTS).index(case)}"
    opener, headers = _signed_in(server, name)
    if kind == "range":
        code, _, body = _status(opener, f"{base}/audio/{item['id']}/0", headers={"Range": sent})
    else:
        code, _, body = _status(opener, base + "/api/decision", (sent % item["id"] if "%s" in sent else sent).encode(), headers)
    text = body.decode()
    text = json.loads(text)["error"] if text.startswith("{") else text
    assert code == want_code and reason in text, (code, text[:300])
    assert "\n" not in text.strip() and "Traceback" not in text  # one line
    with ReviewStore(server["target"].db_path) as store:
        assert store.get(item["id"], name) is None  # nothing of it was stored
    ok = json.dumps({"item_id": item["id"], "fluency": 2}).encode()
    assert _status(opener, base + "/api/decision", ok, headers)[0] == 200  # the server still answers


def test_a_request_is_served_while_another_connection_holds_the_write_lock(build, server) -> None:
    """A save waits for SQLite's write lock on the thread pool: meanwhile the same reviewer's item page and a static
    file are served. (On the event loop, the waiting save stalled every request until the lock came free.)"""
    from concurrent.futures import ThreadPoolExecutor

    base, item = server["base"], load_target_first(build)
    opener, headers = _signed_in(server, "fay")
    holder = sqlite3.connect(server["target"].db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer (a second server on this build, a long export) holds the lock
    with ThreadPoolExecutor(1) as pool:
        try:
            body = json.dumps({"item_id": item["id"], "fluency": 3}).encode()
            save = pool.submit(_status, opener, base + "/api/decision", body, headers)
            time.sleep(1.0)  # let the save reach the server and wait for the lock
            assert not save.done(), save.result()
            page = _status(opener, f"{base}/item/{item['id']}")
            css = _status(_opener(), base + "/static/review.css")
            assert not save.done()  # both answered while the save still waited: the lock was held all along
            assert page[0] == 200 and b'id="sentence"' in page[2] and css[0] == 200
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert save.result()[0] == 200  # the lock came free: the save went through
    from pipeline.review.store import ReviewStore

    with ReviewStore(server["target"].db_path) as store:
        assert store.get(item["id"], "fay").fluency == 3


def test_add_reviewer_prints_the_host_given(build) -> None:
    from pipeline.review.cli import reviewer_url

    url = _cli(build["env"], "review", "add-reviewer", "gus", str(build["dir"]), "--host", "0.0.0.0", "--port", "9999").strip()
    assert url.startswith(f"http://{socket.gethostname()}:9999/?token=")  # every address: the machine's name
    assert reviewer_url("192.0.2.7", 8765, "t") == "http://192.0.2.7:8765/?token=t"
    assert reviewer_url("::1", 8765, "t") == "http://[::1]:8765/?token=t"
    assert reviewer_url("::", 8765, "t") == f"http://{socket.gethostname()}:8765/?token=t"


def test_two_reviewers_write_at_the_same_time(build, server) -> None:
    """Two reviewers' sessions post at once (fluency only, so the browser test's queue is untouched): nothing is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.review.store import ReviewStore
    from pipeline.review.target import load_target

    target = load_target(build["dir"])
    ids = list(target.items["id"][10:40])
    with ReviewStore(target.db_path) as store:
        links = {name: f"{server['base']}/?token={store.add_reviewer(name)}" for name in ("carol", "dave")}

    def review(name: str) -> list[int]:
        opener = _opener()
        page = _status(opener, links[name])[2]
        csrf = page.split(b'name="csrf-token" content="')[1].split(b'"')[0].decode()
        headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
        return [_status(opener, server["base"] + "/api/decision", json.dumps({"item_id": i, "fluency": 1 + k % 3}).encode(), headers)[0]
                for k, i in enumerate(ids)]

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(review, ["carol", "dave"]))
    assert codes == [[200] * len(ids)] * 2
    with ReviewStore(target.db_path) as store:
        for name in ("carol", "dave"):
            saved = {d.item_id: d.fluency for d in store.decisions(name)}
            assert saved == {i: 1 + k % 3 for k, i in enumerate(ids)}


def load_target_first(build) -> dict:
    from pipeline.review.target import load_target

    return load_target(build["dir"]).items.iloc[0].to_dict()


def test_audio_is_read_from_the_shard_by_offset_with_ranges(build, server) -> None:
    from pipeline.review.target import load_target

    base, ann = server["base"], _opener()
    _status(ann, server["urls"]["ann"])
    target = load_target(build["dir"])
    item = target.items.iloc[0]
    clip = target.clips[item["clip_ids"][0]]
    whole = read_clip_bytes(target.corpus_root, clip["shard"], clip["member"], clip["offset"], clip["size"])
    code, headers, body = _status(ann, f"{base}/audio/{item['id']}/0")
    assert code == 200 and body == whole and headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "audio/flac"
    code, headers, body = _status(ann, f"{base}/audio/{item['id']}/0", headers={"Range": "bytes=100-1099"})
    assert code == 206 and body == whole[100:1100] and headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    code, headers, body = _status(ann, f"{base}/audio/{item['id']}/0", headers={"Range": "bytes=-50"})
    assert code == 206 and body == whole[-50:]
    code, headers, _ = _status(ann, f"{base}/audio/{item['id']}/0", headers={"Range": f"bytes={len(whole)}-"})
    assert code == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"
    # ids, never paths: anything that is not an item id and clip number of the queue is simply not found
    for path in (f"/audio/{item['id']}/{len(item['clip_ids'])}", "/audio/..%2F..%2Fetc%2Fpasswd/0", "/audio/x/0",
                 "/static/..%2F..%2Fapp.py", "/item/..%2Fread%2Fclips.parquet"):
        assert _status(ann, base + path)[0] == 404, path


@needs_chromium
def test_reviewers_in_a_browser_and_back_into_the_release(build, server) -> None:
    from playwright.sync_api import sync_playwright

    base = server["base"]
    audio_statuses: list[int] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("response", lambda r: audio_statuses.append(r.status) if "/audio/" in r.url else None)
            # no token: refused, in the browser too
            assert page.goto(base + "/").status == 401 and "personal review link" in page.inner_text("#refused")

            # ann opens her link: the first item of the queue, token gone from the address bar
            page.goto(server["urls"]["ann"])
            assert "/item/" in page.url and "token" not in page.url
            assert "[MASK]" in page.inner_text("#sentence") and page.inner_text("#answer")

            # play clip 1 with the keyboard: it has a duration and its time advances
            page.keyboard.press("a")
            page.wait_for_function("() => { const a = document.querySelector('audio'); return a.duration > 0 && a.currentTime > 0.2 }",
                                   timeout=20000)
            t1 = page.evaluate("document.querySelector('audio').currentTime")
            page.wait_for_function(f"() => document.querySelector('audio').currentTime > {t1} + 0.2", timeout=20000)
            page.keyboard.press(" ")  # pause
            assert page.evaluate("document.querySelector('audio').duration") > 0
            # seek: the player fetches from the middle of the clip with a Range request
            page.evaluate("() => { const a = document.querySelector('audio'); a.currentTime = a.duration * 0.6; }")
            page.wait_for_function("() => document.querySelector('audio').readyState >= 2", timeout=20000)
            assert 206 in audio_statuses

            # ann decides four items with the keyboard only: keep, drop, fix, keep (fluency and a comment too)
            plan = [("3", "k"), ("2", "d"), ("1", "f"), ("2", "k")]
            ann_items = []
            for fluency, key in plan:
                page.wait_for_selector("#item")
                item = page.get_attribute("#item", "data-item-id")
                ann_items.append(item)
                _press_and_save(page, fluency)
                _press_and_save(page, key)
                if key == "d":
                    page.keyboard.press("e")
                    page.keyboard.type("the two clips sound alike")
                    _press_and_save(page, "Escape")
                page.keyboard.press("n")
                page.wait_for_function(f"() => document.querySelector('#item') && document.querySelector('#item').dataset.itemId !== '{item}'")
            assert len(set(ann_items)) == 4
            assert page.inner_text("#progress-text").startswith("4 / ")

            # reload: every decision is still there
            fixed_answer = ""
            for item, (fluency, key) in zip(ann_items, plan):
                page.goto(f"{base}/item/{item}")
                page.reload()
                want = {"k": "keep", "d": "drop", "f": "fix"}[key]
                assert page.get_attribute("#current-decision", "data-decision") == want, item
                assert f"fluency {fluency}" in page.inner_text("#current-decision")
                if key == "f":
                    fixed_answer = page.inner_text("#current-decision").split("→ ")[1].split(" ·")[0]
                if key == "d":
                    assert page.input_value("#comment") == "the two clips sound alike"

            # bob, in his own browser context, decides the same four: agrees on three, drops the fourth
            bob = browser.new_context().new_page()
            bob.goto(server["urls"]["bob"])
            for item, key in zip(ann_items, ["k", "d", "f", "d"]):
                assert bob.get_attribute("#item", "data-item-id") == item
                _press_and_save(bob, key)
                bob.keyboard.press("n")
                bob.wait_for_function(f"() => !document.querySelector('#item') || document.querySelector('#item').dataset.itemId !== '{item}'")

            # the stats page: ann keep 2 / drop 1 / fix 1, bob keep 1 / drop 2 / fix 1, alike on 3 of 4:
            # p_o = 3/4, p_e = (2·1 + 1·2 + 1·1)/16 = 5/16, κ = (12/16 − 5/16)/(11/16) = 7/11 = 0.636
            page.keyboard.press("s")
            page.wait_for_selector("#cohen")
            assert "ann – bob" in page.inner_text("#cohen")
            assert page.inner_text("#cohen .kappa") == "0.636"
            assert page.inner_text("#agreement-items") == "4"
            if os.environ.get("AUDITORYBENCH_REVIEW_SCREENSHOT"):  # how pipeline/review/screenshot.png is made
                page.set_viewport_size({"width": 1100, "height": 760})
                page.goto(f"{base}/item/{ann_items[2]}")
                page.screenshot(path=os.environ["AUDITORYBENCH_REVIEW_SCREENSHOT"])
        finally:
            browser.close()

    # export: the majority per item (ann and bob tie on the fourth: it stays flagged)
    out = _cli(build["env"], "review", "export", str(build["dir"]))
    assert "wrote" in out
    dec = pd.read_csv(build["dir"] / "review" / "decisions.csv", dtype=str, keep_default_na=False).set_index("id")
    assert [dec.loc[i, "decision"] for i in ann_items] == ["keep", "drop", "fix", "flag"]
    assert dec.loc[ann_items[2], "answer"] == fixed_answer

    # rebuild: the filter reruns (its inputs now hold the decisions file) and so does the release
    for stage in ("filter",):
        _cli(build["env"], stage, *build["common"])
    _cli(build["env"], "release", *build["common"], "--releases", str(build["tmp"] / "after"))
    _cli(build["env"], "card", *build["common"], "--releases", str(build["tmp"] / "after"))  # the card is its own step
    before, after = load_release(build["before"]), load_release(build["tmp"] / "after" / "demo-1.0.0")

    def ids(rel) -> dict[str, dict]:
        return {r["id"]: r for t in rel.tasks for s in rel.splits(t) for r in rel.items(t, s).to_dict("records")}

    was, now = ids(before), ids(after)
    filter_dir = build["dir"] / "filter"
    kept = pd.read_parquet(filter_dir / "items.parquet").set_index("id")
    rejects = pd.read_parquet(filter_dir / "rejects.parquet")
    dropped = ann_items[1]
    assert dropped in was and dropped not in now
    assert ((rejects["key"] == dropped) & (rejects["reason"] == "review_drop")).any()
    cand = pd.read_parquet(filter_dir / "candidates.parquet").set_index("id")
    fixed = cand.loc[ann_items[2]]
    new_id = item_id(fixed["task"], fixed["sentence"], fixed_answer, list(fixed["clip_ids"]))
    assert ann_items[2] not in kept.index
    assert new_id in kept.index or ((rejects["key"] == new_id) & (rejects["reason"] == "rebalance")).any()
    if new_id in kept.index:
        assert now[new_id]["answer"] == fixed_answer and not now[new_id]["review_flag"]
    if ann_items[0] in kept.index:
        assert not kept.loc[ann_items[0], "review_flag"]  # reviewed and kept: no longer flagged
    if ann_items[3] in kept.index:
        assert kept.loc[ann_items[3], "review_flag"]  # a tie stays flagged
    manifest = json.loads((filter_dir / "manifest.json").read_text())
    review = manifest["counts"]["review"]
    assert (review["reviewed"], review["dropped"], review["fixed"], review["kept"], review["flagged"]) == (4, 1, 1, 1, 1)
    assert review["agreement"]["cohen_kappa"] == pytest.approx(7 / 11, abs=1e-4)
    assert "review_decisions" in manifest["inputs"]
    card = (build["tmp"] / "after" / "demo-1.0.0" / "README.md").read_text()
    assert "4 items reviewed — 1 kept, 1 dropped, 1 answers fixed, 1 left flagged" in card
    assert "Cohen's κ = 0.636" in card


@needs_chromium
def test_every_clip_plays_from_the_keyboard(build, server) -> None:
    """a/b play clips 1/2 and Shift + digit n plays clip n, up to 9; every clip's box shows its key."""
    from playwright.sync_api import sync_playwright

    target = server["target"]
    item = max((i for i in target.items.to_dict("records")
                if all(target.audio_source(i["id"], n) for n in range(len(i["clip_ids"])))), key=lambda i: len(i["clip_ids"]))
    n_clips = len(item["clip_ids"])
    assert n_clips >= 3, "the demo build has no item with three clips"
    from pipeline.review.store import ReviewStore

    with ReviewStore(target.db_path) as store:  # a reviewer of its own: the other tests' queues stay as they are
        link = f"{server['base']}/?token={store.add_reviewer('hal')}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(link)
            page.goto(f"{server['base']}/item/{item['id']}")
            keys = [page.inner_text(f'.clip:nth-child({n + 1}) kbd') for n in range(n_clips)]
            assert keys == ["a", "b", *[f"⇧{n + 1}" for n in range(2, n_clips)]][:9] + [""] * max(0, n_clips - 9)
            presses = [(n, f"Shift+Digit{n + 1}") for n in range(min(n_clips, 9))] + [(0, "a"), (1, "b")]
            for n, key in presses:
                page.keyboard.press(key)
                page.wait_for_function(
                    f"""() => {{ const a = document.querySelector('audio[data-n="{n}"]'); return !a.paused && a.currentTime > 0 }}""",
                    timeout=20000)
                playing = page.evaluate("Array.from(document.querySelectorAll('audio')).filter(a => !a.paused).map(a => a.dataset.n)")
                assert playing == [str(n)], key  # the others were paused
        finally:
            browser.close()


@needs_chromium
def test_two_review_targets_open_at_once_in_one_browser(build, server, release_server) -> None:
    """A build and a release, each served on its own port, in two tabs of one browser: signing in to the second keeps
    the first's session (cookies are per host, not per port, so each server names its cookie after its port)."""
    from playwright.sync_api import sync_playwright

    from pipeline.review.store import ReviewStore

    with ReviewStore(server["target"].db_path) as store:
        link = f"{server['base']}/?token={store.add_reviewer('ida')}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            build_tab, release_tab = context.new_page(), context.new_page()
            build_tab.goto(link)
            release_tab.goto(release_server["urls"]["ivy"])
            for tab in (build_tab, release_tab, build_tab):  # fluency only: nobody's verdicts change
                tab.bring_to_front()
                _press_and_save(tab, "2")
            build_tab.reload()
            assert build_tab.inner_text("#reviewer") == "ida" and release_tab.inner_text("#reviewer") == "ivy"
            names = {c["name"] for c in context.cookies()}
            assert names == {f"ab_review_session_{server['port']}", f"ab_review_session_{release_server['port']}"}
        finally:
            browser.close()
    with ReviewStore(server["target"].db_path) as store:
        assert [d.fluency for d in store.decisions("ida")] == [2]
    with ReviewStore(release_server["target"].db_path) as store:
        assert [d.fluency for d in store.decisions("ivy")] == [2]


def _press_and_save(page, *keys: str) -> None:
    """Press keys on an item page and wait until the server has answered the save they cause."""
    before = int(page.get_attribute("#item", "data-saves") or 0)
    for key in keys:
        page.keyboard.press(key)
    if keys[-1] == "f" and page.evaluate("document.activeElement.id") == "fix-answer":
        page.keyboard.press("Enter")  # several answers: the select has the focus; Enter takes the one shown
    page.wait_for_function(f"() => parseInt(document.querySelector('#item').dataset.saves || '0') > {before}", timeout=10000)
    assert page.inner_text("#save-status") == "saved ✓"


def test_a_release_can_be_reviewed_without_touching_its_files(build) -> None:
    from pipeline.review.store import ReviewStore
    from pipeline.review.target import load_target

    target = load_target(build["before"], build_root=build["tmp"] / "build")
    rel = load_release(build["before"])
    assert target.kind == "release" and target.state_dir == build["before"] / ".review"
    assert len(target.items) == sum(len(rel.items(t, s)) for t in rel.tasks for s in rel.splits(t))
    flags = list(target.items["review_flag"])
    assert flags == sorted(flags, reverse=True)  # flagged first
    with_clips = target.items[target.items["clip_ids"].map(len) > 0].iloc[0]
    src = target.audio_source(with_clips["id"], 0)  # audio from the build the release came from
    assert src is not None and src.path.is_file() and src.size > 0
    assert target.choices["sound_pitch_comparison"] == ["higher", "lower"]
    with ReviewStore(target.db_path) as store:
        store.add_reviewer("carol")
    load_release(build["before"])  # still verifies: the review state is a hidden folder, not a release file


def test_each_clip_is_labelled_with_the_span_it_sounds(build) -> None:
    from benchmark.tasks import get_task
    from pipeline.review.target import load_target

    target = load_target(build["dir"])
    checked = 0
    for item in target.items.to_dict("records"):
        if not item.get("span1"):
            continue
        sides = target.sides(item)
        assert len(sides) == len(item["clip_ids"]) and set(sides) == {item["span1"], item["span2"]}, item["id"]
        column = next(b.column for b in get_task(item["task"]).measurement.bases if b.basis == item["basis"])
        for span, value in ((item["span1"], item["value1"]), (item["span2"], item["value2"])):
            measured = [target.clips[c][column] for c, s in zip(item["clip_ids"], sides) if s == span]
            assert sum(measured) / len(measured) == pytest.approx(value, rel=1e-6), item["id"]  # a source's value: its clips' mean
        checked += 1
    assert checked > 10


def test_comments_go_to_their_own_file_and_the_stats_page(build, server) -> None:
    """Comments are exported to comments.csv beside decisions.csv, which the filter does not read: a comment edit
    changes no byte of decisions.csv and the filter reruns nothing. The stats page lists them, escaped."""
    base, target = server["base"], server["target"]
    item = target.items.iloc[len(target.items) - 1]["id"]  # the queue's last: not one the browser test decides
    opener, headers = _signed_in(server, "jay")
    first = '<b>too quiet</b>, "clip 2"\nsecond line'

    def comment(text: str) -> None:
        body = json.dumps({"item_id": item, "decision": "keep", "fluency": 3, "comment": text}).encode()
        assert _status(opener, base + "/api/decision", body, headers)[0] == 200

    comment(first)
    code, _, page = _status(opener, base + "/stats")
    assert code == 200 and b"&lt;b&gt;too quiet&lt;/b&gt;" in page and b"<b>too quiet" not in page
    assert f'<a href="/item/{item}">'.encode() in page

    review_dir = build["dir"] / "review"
    _cli(build["env"], "review", "export", str(build["dir"]))
    comments = pd.read_csv(review_dir / "comments.csv", dtype=str, keep_default_na=False)
    assert list(comments.columns) == ["id", "reviewer", "comment"]
    assert comments[comments["reviewer"] == "jay"].to_dict("records") == [{"id": item, "reviewer": "jay", "comment": first}]
    decisions = (review_dir / "decisions.csv").read_bytes()
    assert b"too quiet" not in decisions
    _cli(build["env"], "filter", *build["common"])  # the filter takes in the decisions as they are now
    manifest = build["dir"] / "filter" / "manifest.json"
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)

    comment("too quiet on clip 2")  # an edit of the comment only
    _cli(build["env"], "review", "export", str(build["dir"]))
    assert (review_dir / "decisions.csv").read_bytes() == decisions
    assert "too quiet on clip 2" in (review_dir / "comments.csv").read_text(encoding="utf-8")
    _cli(build["env"], "filter", *build["common"])
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before  # nothing reran
