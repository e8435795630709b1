"""Every SQL example in README.md and docs/*.md runs on both backends and returns the same rows.

Each ```sql block is PostgreSQL; a block whose first line is ``-- SQLite`` is the SQLite version of the
block before it, and a PostgreSQL block without one must run unchanged on SQLite.  The store holds 70 days
of posts about the agencies the examples name (with a spike, so the alerts view has rows), scored and
rolled up by ``enrich``, so a query that silently filters everything out (a slug that does not exist, a
date comparison that never matches) fails on its empty result.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from trustwatch.analysis.trends import enrich
from trustwatch.collectors.agencies import load_registry
from trustwatch.models import store as store_mod

from trustwatch.records import AmbiguityRecord, AuthorRecord, MentionRecord, Metrics, Page, PostRecord, RejectRecord

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
AGENCY_WORDS = {"nypd": "NYPD", "lapd": "LAPD", "chicago-pd": "Chicago Police Department"}
PHRASES = ("{a} officers were thanked for their help today", "the {a} showed up fast, great job",
           "another {a} scandal, corruption again", "{a} never showed, useless and nobody came")
#: Examples that empty data can legitimately answer with no rows: none.
ALLOWED_EMPTY: set[str] = set()


def _examples() -> list[tuple[str, str, str]]:
    """(id, PostgreSQL text, SQLite text) for every ```sql block of the docs (```postgresql blocks, such as the
    Citus set-up in docs/SCALING.md, are for another server and not run here)."""
    out: list[tuple[str, str, str]] = []
    for doc in DOCS:
        blocks = re.findall(r"^```sql\n(.*?)^```", doc.read_text(), flags=re.S | re.M)
        for n, block in enumerate(blocks):
            if block.startswith("-- SQLite"):
                assert out and out[-1][0].startswith(doc.name), f"{doc.name}: SQLite block {n} follows no query"
                out[-1] = (out[-1][0], out[-1][1], block)
            elif re.match(r"\s*(SELECT|WITH)\b", block, flags=re.I):
                out.append((f"{doc.name}#{n}", block, block))
    return out


EXAMPLES = _examples()


def _fill(engine: Engine) -> None:
    """70 days of posts for the agencies the examples name, a spike for NYPD three days ago, a run, a reject."""
    store_mod.sync_agencies(engine, load_registry().entries)
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    page = Page()
    n = 0
    for days_back in range(70, 0, -1):
        for slug, words in AGENCY_WORDS.items():
            count = 30 if (slug == "nypd" and days_back == 3) else 2
            for k in range(count):
                n += 1
                platform = "x" if n % 2 else "reddit"
                pid = str(10_000 + n)
                body = PHRASES[n % len(PHRASES)].format(a=words)
                page.authors.append(AuthorRecord(platform, f"u{n % 40}", username=f"user{n % 40}"))
                page.posts.append(PostRecord(
                    platform=platform, platform_post_id=pid, kind="post",
                    created_at=now - dt.timedelta(days=days_back, minutes=7 * k), text=body,
                    author_platform_id=f"u{n % 40}", url=f"https://example.org/{pid}",
                    metrics=Metrics(likes=n % 17, reposts=n % 5, replies=n % 3, quotes=0, score=n % 11)))
                start = body.index(words)
                page.mentions.append(MentionRecord(platform, pid, slug, words, "name", start, start + len(words)))
    for days_back in (9, 5, 2):  # a shared name no post settles: README's ambiguity queries count it
        n += 1
        pid = str(10_000 + n)
        page.posts.append(PostRecord(platform="x", platform_post_id=pid, kind="post", text="Clinton PD made an arrest",
                                     created_at=now - dt.timedelta(days=days_back), author_platform_id="u1"))
        page.ambiguities.append(AmbiguityRecord("x", pid, "Clinton PD", ("ia-clinton-police-department",
                                                                         "ms-clinton-police-department"), 0, 10))
    page.rejects.append(RejectRecord("x", "missing created_at", {"id": "1"}, source="api"))
    run = store_mod.open_run(engine, platform="x", query_key="q1", query_version="v1", query_text="nypd",
                             window_start=now - dt.timedelta(hours=1), window_end=now)
    store_mod.write_page(engine, page, run.run_id)
    # a thread revisit's ledger row, as collectors/reddit_revisit.py writes it (README's completeness query)
    store_mod.open_run(engine, platform="reddit", query_key="reddit-revisit-t3_abc1", query_version="age-6h",
                       query_text="t3_abc1", window_start=now - dt.timedelta(hours=7), window_end=now,
                       source="revisit", notes={"num_comments": 12, "comments_seen": 9, "thread_state": "open"})
    enrich(engine)


@pytest.mark.parametrize("name,pg_sql,sqlite_sql", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_doc_example_returns_the_same_rows_on_both_backends(name: str, pg_sql: str, sqlite_sql: str,
                                                            pg_engine_filled: Engine,
                                                            sqlite_engine_filled: Engine) -> None:
    with pg_engine_filled.connect() as conn:
        pg_rows = conn.execute(text(pg_sql.replace(":", r"\:"))).all()
    with sqlite_engine_filled.connect() as conn:
        sqlite_rows = conn.execute(text(sqlite_sql.replace(":", r"\:"))).all()
    if name not in ALLOWED_EMPTY:
        assert pg_rows, f"{name} returns no rows on the demo-like store:\n{pg_sql}"
    assert len(sqlite_rows) == len(pg_rows), f"{name}: {len(pg_rows)} rows on PostgreSQL, {len(sqlite_rows)} on SQLite"
    if not re.search(r"\bLIMIT\b", pg_sql):  # a LIMIT cuts through ties, which each backend orders its own way
        assert sorted(str(r[0])[:10] for r in sqlite_rows) == sorted(str(r[0])[:10] for r in pg_rows), name


def test_every_doc_query_block_is_covered() -> None:
    assert len(EXAMPLES) >= 12
    assert not [e for e in EXAMPLES if "-- SQLite" in e[1]]


@pytest.fixture(scope="module")
def pg_engine_filled(pg_server) -> Engine:
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    engine = make_engine(pg_server.create("tw_docs"))
    migrate.upgrade(engine)
    _fill(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_engine_filled(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('docs') / 'store.db'}")
    migrate.upgrade(engine)
    _fill(engine)
    yield engine
    engine.dispose()
