"""SQLite writers of one process queue on a lock of their own (woken at once, not by SQLite's sleeping busy handler).

Whatever ends a write transaction - commit, rollback, close, an error - must free the next writer: a lock left
held would stop every write of the server. Each check starts a second writer in a thread and needs it to begin."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from db.migrate import upgrade
from db.session import begin_write, make_engine, make_session_factory

WAIT_S = 10.0


@pytest.fixture
def sessions(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'writer.sqlite3'}"
    upgrade(url)
    engine = make_engine(url, sqlite_busy_timeout_ms=60_000)
    yield make_session_factory(engine)
    engine.dispose()


def _second_writer_begins(sessions) -> threading.Event:
    began = threading.Event()

    def write() -> None:
        with sessions() as session:
            begin_write(session)
            began.set()
            session.commit()

    threading.Thread(target=write, daemon=True).start()
    return began


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_next_writer_begins_when_the_transaction_ends(sessions, end):
    session = sessions()
    begin_write(session)
    waiting = _second_writer_begins(sessions)
    assert not waiting.wait(0.3)  # writers are serialised: the second waits while the first is open
    getattr(session, end)()
    assert waiting.wait(WAIT_S)
    session.close()


def test_a_failed_write_frees_the_next_writer(sessions):
    with sessions() as session:
        begin_write(session)
        with pytest.raises(Exception, match="no such table"):
            session.execute(text("INSERT INTO no_such_table VALUES (1)"))
        session.rollback()
    assert _second_writer_begins(sessions).wait(WAIT_S)


def test_a_session_that_writes_twice_takes_the_lock_once(sessions):
    with sessions() as session:
        begin_write(session)
        begin_write(session)  # e.g. the write dependency, then a service: no self-deadlock
        session.commit()
    assert _second_writer_begins(sessions).wait(WAIT_S)
