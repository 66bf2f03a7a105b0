"""The Wikipedia client and the snapshot refresh, end to end against a loopback MediaWiki API server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from benchmark.errors import InputError
from pipeline.stages.wiki import wiki_refresh, wiki_stage
from pipeline.wiki.client import WikiClient, refresh_animal_snapshot, refresh_snapshot
from pipeline.wiki.snapshot import animal_entry, load_snapshot, range_entry, write_snapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wiki"

PAGES = {  # title -> (page id, revision id, fixture)
    "Violin": (101, 9001, "violin.txt"),
    "Clarinet": (102, 9002, "clarinet.txt"),
    "Recorder (musical instrument)": (103, 9003, "recorder.txt"),
    "Guitar": (104, 9004, "guitar_tuning_only.txt"),
    "List of animal sounds": (105, 9005, "list_of_animal_sounds.wikitext"),
}
REDIRECTS = {"Fiddle": "Violin"}


class _MediaWiki(BaseHTTPRequestHandler):
    """Answers action=query with prop=info | extracts | revisions in the MediaWiki JSON (formatversion 1)."""

    log: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).log.append({"path": url.path, "agent": self.headers.get("User-Agent", ""), **q})
        if url.path != "/w/api.php" or q.get("action") != "query" or q.get("format") != "json":
            return self._send(400, {"error": {"code": "badrequest"}})
        if q.get("titles") == "Server error":
            return self._send(500, {"error": {"code": "internal"}})
        asked = q["titles"]
        query: dict = {}
        title = asked
        if asked in REDIRECTS and q.get("redirects") == "1":
            title = REDIRECTS[asked]
            query["redirects"] = [{"from": asked, "to": title}]
        if title not in PAGES:
            query["pages"] = {"-1": {"ns": 0, "title": title, "missing": ""}}
            return self._send(200, {"batchcomplete": "", "query": query})
        page_id, rev, fixture = PAGES[title]
        text = (FIXTURES / fixture).read_text(encoding="utf-8")
        page = {"pageid": page_id, "ns": 0, "title": title}
        prop = q.get("prop")
        if prop == "info":
            page.update({"contentmodel": "wikitext", "lastrevid": rev, "length": len(text.encode())})
        elif prop == "extracts":
            page["extract"] = text
        elif prop == "revisions":
            page["revisions"] = [{"revid": rev, "parentid": rev - 1, "slots": {"main": {"contentmodel": "wikitext", "*": text}}}]
        else:
            return self._send(400, {"error": {"code": "badprop"}})
        query["pages"] = {str(page_id): page}
        return self._send(200, {"batchcomplete": "", "query": query})

    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def api_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MediaWiki)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
    server.shutdown()
    server.server_close()


def _old_snapshot(path: Path) -> None:
    hand = [
        ("violin", "instrument", "Violin", "The violin has a range from G3 to A7."),
        ("clarinet", "instrument", "Clarinet", "The clarinet has a range from D3 to B♭6."),
        ("alto recorder", "instrument", "Recorder (musical instrument)", "The alto recorder has a range from F4 to G6."),
        ("bass recorder", "instrument", "Recorder (musical instrument)", "The bass recorder has a range from F3 to G5."),
        ("great bass recorder", "instrument", "Recorder (musical instrument)", "The great bass recorder has a range from C3 to D5."),
        ("guitar", "instrument", "Guitar", "The guitar has a range from E2 to B5."),
        ("theremin", "instrument", "Theremin", "The theremin is played from C3 to C7 in range."),
        ("tenor", "voice", "Tenor", "The tenor's vocal range extends from C3 to C5."),
    ]
    write_snapshot([range_entry(n, k, t, s, hand_curated=True) for n, k, t, s in hand], path, "hand-curated-1")


def test_client_fetches_text_revision_and_follows_redirects(api_url, tmp_path):
    _MediaWiki.log.clear()
    client = WikiClient(cache_path=tmp_path / "cache.sqlite", api_url=api_url, user_agent="auditorybench-test/1.0", max_retries=0)
    page = client.page_text("Fiddle")
    assert page.exists and page.title == "Violin" and page.revision_id == 9001
    assert "The compass of the violin is from G3" in page.text
    assert {r["prop"] for r in _MediaWiki.log} == {"info", "extracts"}
    assert all(r["path"] == "/w/api.php" and "auditorybench-test/1.0" in r["agent"] for r in _MediaWiki.log)
    missing = client.page_text("Theremin")
    assert not missing.exists and missing.text == "" and missing.revision_id is None
    wikitext = client.page_wikitext("List of animal sounds")
    assert wikitext.revision_id == 9005 and "{| class=\"wikitable" in wikitext.text
    client.close()


def test_disk_cache_replays_without_the_network(api_url, tmp_path):
    cache = tmp_path / "cache.sqlite"
    first = WikiClient(cache_path=cache, api_url=api_url, max_retries=0)
    page = first.page_text("Clarinet")
    assert first.requests == 2 and first.cache_hits == 0
    first.close()
    offline = WikiClient(cache_path=cache, api_url=api_url, offline=True)
    again = offline.page_text("Clarinet")
    assert again == page and offline.requests == 0 and offline.cache_hits == 2
    with pytest.raises(InputError, match="offline"):
        offline.page_text("Violin")
    offline.close()


def test_http_errors_become_input_errors(api_url, tmp_path):
    client = WikiClient(cache_path=None, api_url=api_url, max_retries=0)
    with pytest.raises(InputError, match="Server error"):
        client.page_text("Server error")


def test_refresh_snapshot_end_to_end(api_url, tmp_path):
    path = tmp_path / "ranges.json"
    _old_snapshot(path)
    client = WikiClient(cache_path=tmp_path / "cache.sqlite", api_url=api_url, max_retries=0)
    snap = refresh_snapshot(None, path, client, stamp="2025-01-02")
    assert snap == load_snapshot(path)
    assert snap["version"].startswith("2025-01-02+")
    got = {e["name"]: e for e in snap["entries"]}
    assert set(got) == {"violin", "clarinet", "alto recorder", "bass recorder", "great bass recorder", "guitar", "theremin", "tenor"}

    violin = got["violin"]  # read from the live page: page's range (to C8), revision kept, no longer hand-curated
    assert (violin["low_note"], violin["high_note"], violin["revision_id"]) == ("G3", "C8", 9001)
    assert violin["hand_curated"] is False and violin["refresh_status"] == "parsed"
    assert violin["source_text"].startswith("The compass of the violin")
    assert (got["clarinet"]["low_note"], got["clarinet"]["high_note"], got["clarinet"]["transposition_semitones"]) == ("D3", "B♭6", -2)
    assert (got["alto recorder"]["low_note"], got["bass recorder"]["high_note"]) == ("F4", "G5")  # shared page: own sentence
    for name, status, rev in [("great bass recorder", "no_range_in_page", 9003), ("guitar", "no_range_in_page", 9004)]:
        kept = got[name]  # page read, no range in it: the hand-curated entry stays, flagged
        assert kept["hand_curated"] is True and kept["refresh_status"] == status and kept["checked_revision_id"] == rev
        assert kept["revision_id"] is None
    assert got["theremin"]["refresh_status"] == "page_missing" and got["theremin"]["hand_curated"] is True
    assert got["tenor"]["refresh_status"] == "page_missing"
    assert snap["refresh"] == {"parsed": 4, "no_range_in_page": 2, "page_missing": 2}
    assert snap["hand_curated"] == 4
    client.close()

    # a name that is not in the snapshot and has no page is dropped, and said so
    client = WikiClient(cache_path=tmp_path / "cache.sqlite", api_url=api_url, max_retries=0)
    snap2 = refresh_snapshot(["violin", "kazoo"], path, client, stamp="2025-01-03")
    assert [e["name"] for e in snap2["entries"]] == ["violin"] and snap2["refresh"]["dropped"] == 1
    assert client.requests == 1  # violin came from the cache; only the kazoo page was asked for (info)
    client.close()


def test_refresh_animal_snapshot_end_to_end(api_url, tmp_path):
    path = tmp_path / "animal_sounds.json"
    write_snapshot([animal_entry(line, hand_curated=True) for line in ["Owl – hoot", "Cow – moo"]], path, "hand-curated-1")
    client = WikiClient(cache_path=tmp_path / "cache.sqlite", api_url=api_url, max_retries=0)
    snap = refresh_animal_snapshot(path, client, stamp="2025-01-02")
    got = {e["name"]: e for e in snap["entries"]}
    assert got["owl"]["sounds"] == ["hoot", "screech"] and got["owl"]["revision_id"] == 9005
    assert got["owl"]["hand_curated"] is False and got["cat"]["sounds"] == ["meow", "purr"]
    assert got["cow"]["refresh_status"] == "not_in_page" and got["cow"]["hand_curated"] is True
    assert snap["refresh"] == {"parsed": 5, "not_in_page": 1}


def test_wiki_refresh_then_stage(api_url, tmp_path):
    ranges, animals = tmp_path / "ranges.json", tmp_path / "animal_sounds.json"
    _old_snapshot(ranges)
    write_snapshot([animal_entry("Owl – hoot", hand_curated=True)], animals, "hand-curated-1")
    params = {
        "min_gap": 1.10,
        "templates": ["The sound of {a} is typically [MASK] than the sound of {b}."],
        "ranges_path": str(ranges),
        "animal_sounds_path": str(animals),
        "api_url": api_url,
        "cache_path": str(tmp_path / "cache.sqlite"),
    }
    out = wiki_refresh(params, quiet=True)
    assert out["ranges"]["refresh"]["parsed"] == 4 and out["animal_sounds"]["refresh"]["parsed"] == 5
    manifest = wiki_stage(tmp_path / "build" / "wiki", params, quiet=True)
    assert manifest["snapshots"]["ranges"]["version"] == out["ranges"]["version"]
    assert manifest["hand_curated"] == {"ranges": 4, "animal_sounds": 0}
    assert manifest["tasks"]["animal_sound_recognition"]["items"] == 9  # 5 animals, 9 sounds, none shared
