"""The review store's writes that belong together commit together. A trigger put in the database by another connection
makes SQLite fail between the two statements of a write, as a crash there would; afterwards the file holds both
statements' effects or neither."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.review.store import Decision, ReviewStore


def _fail_before(db_path, event: str, table: str) -> None:
    """Make every `event` (INSERT, DELETE) on `table` fail, from a connection of its own (the store's code is untouched)."""
    with sqlite3.connect(db_path) as db:
        db.execute(f"CREATE TRIGGER fail_{table} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'failed here'); END")


def _clear(db_path, table: str) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute(f"DROP TRIGGER fail_{table}")


def _rows(db_path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


def test_a_decision_and_its_event_commit_together(tmp_path) -> None:
    path = tmp_path / "review.sqlite"
    with ReviewStore(path) as store:
        store.add_reviewer("ann")
        _fail_before(path, "INSERT", "events")  # the decision's row is written, then its event row fails
        with pytest.raises(sqlite3.IntegrityError, match="failed here"):
            store.put(Decision("item-1", "ann", "drop", comment="alike"))
        assert _rows(path, "SELECT * FROM decisions") == []  # rolled back with the event: neither is kept
        assert _rows(path, "SELECT * FROM events") == []
        _clear(path, "events")
        store.put(Decision("item-1", "ann", "keep"))  # the connection is usable again: no transaction left open
    assert _rows(path, "SELECT item_id, decision FROM decisions") == [("item-1", "keep")]
    assert _rows(path, "SELECT item_id, decision FROM events") == [("item-1", "keep")]


def test_a_new_token_and_the_end_of_old_sessions_commit_together(tmp_path) -> None:
    """add-reviewer on an existing name replaces the token and ends the sessions it opened: a failure between the two
    must not leave a revoked reviewer's session alive."""
    path = tmp_path / "review.sqlite"
    with ReviewStore(path) as store:
        old = store.add_reviewer("ann")
        sid, _ = store.open_session("ann")
        _fail_before(path, "DELETE", "sessions")
        with pytest.raises(sqlite3.IntegrityError, match="failed here"):
            store.add_reviewer("ann")
        # neither happened: the old token still opens sessions and the old session is still live
        assert store.reviewer_for_token(old) == "ann" and store.session(sid) is not None
        _clear(path, "sessions")
        new = store.add_reviewer("ann")
        assert store.reviewer_for_token(old) is None and store.session(sid) is None  # both happened
        assert store.reviewer_for_token(new) == "ann"


def test_a_comment_that_starts_like_a_formula_is_exported_quoted_and_shown_as_typed(tmp_path) -> None:
    """comments.csv is opened in spreadsheets: '=HYPERLINK(...)' must arrive as text, not run (OWASP CSV injection)."""
    import pandas as pd

    from pipeline.review.export import comments_table, write_comments
    from pipeline.review.store import Decision

    typed = ['=HYPERLINK("http://x.example","click")', "+1 louder", "-2 dB", "@SUM(A1)", "\tindented", "fine as it is"]
    decisions = [Decision(f"i{n}", "ann", "keep", comment=c) for n, c in enumerate(typed)]
    write_comments(decisions, tmp_path / "comments.csv")
    got = pd.read_csv(tmp_path / "comments.csv", dtype=str, keep_default_na=False)["comment"].tolist()
    assert got == ["'" + c for c in typed[:5]] + ["fine as it is"]
    assert comments_table(decisions)["comment"].tolist() == typed  # the stats page shows them as typed
