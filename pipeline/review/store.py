"""The review database: reviewers, their sessions and their decisions, in one SQLite file (WAL) beside the build.

Every decision is committed the moment it arrives, so a crash or a closed tab loses nothing, and WAL lets two reviewers'
requests write while others read. Each write also appends to `events`, an append-only log, in the same transaction as
the decision (and a reviewer's new token in the same one as the deletion of their sessions): a crash keeps both or
neither. Tokens and session ids are stored only as sha256 digests: the database alone lets no one in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import InputError
from pipeline.filter import REVIEW_DECISIONS

__all__ = ["ReviewStore", "Decision", "DECISIONS", "REVIEWER_NAME"]

DECISIONS = REVIEW_DECISIONS[:3]  # what one reviewer picks (flag is the export's word for a tie)
REVIEWER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviewers (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id_sha256 TEXT PRIMARY KEY, reviewer TEXT NOT NULL REFERENCES reviewers(name),
                                     csrf TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (item_id TEXT NOT NULL, reviewer TEXT NOT NULL REFERENCES reviewers(name),
                                      decision TEXT, answer TEXT NOT NULL DEFAULT '', fluency INTEGER,
                                      comment TEXT NOT NULL DEFAULT '', updated REAL NOT NULL,
                                      PRIMARY KEY (item_id, reviewer));
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, reviewer TEXT NOT NULL,
                                   item_id TEXT NOT NULL, decision TEXT, answer TEXT, fluency INTEGER, comment TEXT);
"""


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Decision:
    """One reviewer's current verdict on one item. decision: keep | drop | fix | None (only fluency or a comment yet);
    answer: the corrected answer when decision is fix; fluency: 1 (awkward) .. 3 (fluent), or None."""

    item_id: str
    reviewer: str
    decision: str | None
    answer: str = ""
    fluency: int | None = None
    comment: str = ""

    @property
    def label(self) -> str | None:
        """What agreement and the majority compare: keep, drop, or fix=<answer>."""
        if self.decision == "fix":
            return f"fix={self.answer}"
        return self.decision


class ReviewStore:
    """One connection per use (cheap in SQLite); open one per request or per thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a decision that was answered "saved" survives a power cut
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self):
        """One write transaction around several statements: BEGIN IMMEDIATE (takes the write lock at once, waiting up
        to the connection's timeout), COMMIT at the end, ROLLBACK on any error. The connection is in autocommit mode
        (isolation_level=None), where `with connection:` alone opens no transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                self._db.execute("ROLLBACK")
            raise

    # ---- reviewers and sessions

    def add_reviewer(self, name: str) -> str:
        """Create a reviewer (or give an existing one a new token, which revokes the old one); returns the token."""
        if not REVIEWER_NAME.match(name):
            raise InputError(f"reviewer name {name!r}: use 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
        token = secrets.token_urlsafe(24)
        with self._transaction() as db:
            db.execute("INSERT INTO reviewers (name, token_sha256, created) VALUES (?, ?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256", (name, _sha(token), time.time()))
            db.execute("DELETE FROM sessions WHERE reviewer = ?", (name,))
        return token

    def reviewers(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM reviewers ORDER BY name")]

    def reviewer_for_token(self, token: str) -> str | None:
        row = self._db.execute("SELECT name FROM reviewers WHERE token_sha256 = ?", (_sha(token),)).fetchone()
        return row[0] if row else None

    def open_session(self, reviewer: str) -> tuple[str, str]:
        """A new browser session for a reviewer: (session id for the cookie, CSRF token for the page)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self._db.execute("INSERT INTO sessions (id_sha256, reviewer, csrf, created) VALUES (?, ?, ?, ?)", (_sha(sid), reviewer, csrf, time.time()))
        return sid, csrf

    def session(self, sid: str) -> tuple[str, str] | None:
        """(reviewer, csrf token) of a live session, or None."""
        row = self._db.execute("SELECT reviewer, csrf FROM sessions WHERE id_sha256 = ?", (_sha(sid),)).fetchone()
        return (row[0], row[1]) if row else None

    # ---- decisions

    def put(self, d: Decision) -> None:
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO decisions (item_id, reviewer, decision, answer, fluency, comment, updated) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(item_id, reviewer) DO UPDATE SET decision = excluded.decision, answer = excluded.answer, "
                "fluency = excluded.fluency, comment = excluded.comment, updated = excluded.updated",
                (d.item_id, d.reviewer, d.decision, d.answer, d.fluency, d.comment, now))
            db.execute("INSERT INTO events (at, reviewer, item_id, decision, answer, fluency, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (now, d.reviewer, d.item_id, d.decision, d.answer, d.fluency, d.comment))

    def get(self, item_id: str, reviewer: str) -> Decision | None:
        row = self._db.execute("SELECT item_id, reviewer, decision, answer, fluency, comment FROM decisions "
                               "WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)).fetchone()
        return Decision(*row) if row else None

    def decisions(self, reviewer: str | None = None) -> list[Decision]:
        q = "SELECT item_id, reviewer, decision, answer, fluency, comment FROM decisions"
        rows = self._db.execute(q + " WHERE reviewer = ? ORDER BY item_id", (reviewer,)) if reviewer else \
            self._db.execute(q + " ORDER BY item_id, reviewer")
        return [Decision(*r) for r in rows]

    def decided_ids(self, reviewer: str) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT item_id FROM decisions WHERE reviewer = ? AND decision IS NOT NULL", (reviewer,))}
