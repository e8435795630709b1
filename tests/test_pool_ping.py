"""Pooled connections are pinged only after they sat idle (models/db.py, PING_AFTER_IDLE_S).

A ping per checkout was a round trip per written page; the server closing idle connections (a restart, an
idle timeout, a failover) must still be invisible to the next write.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from trustwatch.models import db as db_module
from trustwatch.models import store

from tests.store_helpers import AGENCIES, make_page


@pytest.fixture
def engine(pg_engine):
    store.sync_agencies(pg_engine, AGENCIES)
    return pg_engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("select pg_backend_pid()")).scalar_one()


def _count_pings(engine) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_conn):
        pings.append(1)
        return original(dbapi_conn)

    engine.dialect.do_ping = counting
    return pings


def test_a_connection_reused_at_once_is_not_pinged_and_one_left_idle_is(engine, monkeypatch):
    pings = _count_pings(engine)
    for i in range(5):
        store.write_page(engine, make_page(range(i * 10, i * 10 + 10), seed=i))
    assert pings == [], "pages written back to back reuse the connection without a round trip to ping it"
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    store.write_page(engine, make_page(range(100, 110), seed=9))
    assert pings == [1]


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_page(engine, pg_server,
                                                                                      monkeypatch):
    store.write_page(engine, make_page(range(0, 10), seed=1))
    pid = _backend_pid(engine)
    with pg_server.admin.connect() as admin:  # the server ends the pooled connection (restart, idle timeout)
        assert admin.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)  # as if it sat in the pool for a while
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    result = store.write_page(engine, make_page(range(10, 20), seed=2))
    assert result.new == 10 and opened == [1], "the dead connection was replaced, the page written"
    assert _backend_pid(engine) != pid

