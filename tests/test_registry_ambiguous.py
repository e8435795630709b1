"""Shared names a post leaves unsettled are stored, attributed to none but countable (issue 16, item 2)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from trustwatch.collectors.agencies import Matcher, Registry
from trustwatch.collectors.agencies.registry import merge_generated
from trustwatch.collectors.ambiguities import reconcile_ambiguities
from trustwatch.collectors.archive import import_file
from trustwatch.collectors.runner import add_mentions
from trustwatch.models.store import sync_agencies, write_page

from trustwatch.records import AuthorRecord, Page, PostRecord

UNSETTLED = "Clinton PD arrested two men downtown"
SETTLED = "Clinton PD arrested two men downtown, Clinton Iowa"
IOWA = "ia-clinton-police-department"
WHEN = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def clintons(matcher: Matcher) -> list[str]:
    """The agencies "Clinton PD" may mean, as the matcher reports them."""
    unsettled: list = []
    assert matcher.match(UNSETTLED, unsettled=unsettled) == []
    assert len(unsettled) == 1 and IOWA in unsettled[0].candidates
    return list(unsettled[0].candidates)


@pytest.fixture
def synced(store: Engine, registry: Registry, clintons: list[str]) -> Engine:
    """The store knows the Clinton agencies (and NYPD): enough for these posts, quicker than all 18,709."""
    wanted = {*clintons, "nypd"}
    sync_agencies(store, [e for e in registry.entries if e.slug in wanted])
    return store


def post(pid: str, body: str) -> PostRecord:
    return PostRecord("x", pid, "post", WHEN, text=body, author_platform_id="1")


def rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_an_unsettled_name_is_stored_as_one_countable_ambiguity(synced: Engine, matcher: Matcher,
                                                                clintons: list[str]) -> None:
    page = Page(posts=[post("1001", UNSETTLED), post("1002", SETTLED), post("1003", "NYPD and Clinton PD")],
                authors=[AuthorRecord("x", "1", "someone")])
    add_mentions(page, matcher)
    write_page(synced, page)
    write_page(synced, page)  # a rerun of the page changes nothing
    add_mentions(page, matcher)  # nor does matching it again
    write_page(synced, page)

    mentions = rows(synced, "SELECT p.platform_post_id, a.slug FROM post_mentions m JOIN posts p ON p.id = m.post_id "
                            "JOIN agencies a ON a.id = m.agency_id ORDER BY 1, 2")
    assert mentions == [("1002", IOWA), ("1003", "nypd")]
    ambiguous = rows(synced, "SELECT p.platform_post_id, am.term, am.candidates, am.candidate_count, am.start_offset, "
                             "am.end_offset FROM ambiguous_mentions am JOIN posts p ON p.id = am.post_id ORDER BY 1")
    assert [r[0] for r in ambiguous] == ["1001", "1003"]
    _pid, term, candidates, count, start, end = ambiguous[0]
    candidates = json.loads(candidates) if isinstance(candidates, str) else candidates
    assert (term, count, start, end) == ("Clinton PD", len(clintons), 0, 10)
    assert candidates == sorted(clintons) and IOWA in candidates and len(candidates) >= 2
    daily = rows(synced, "SELECT CAST(day AS text), platform, term, candidates, posts FROM ambiguous_mentions_daily")
    assert daily == [("2026-11-20", "x", "Clinton PD", len(clintons), 2)]


def test_a_tombstoned_post_leaves_the_daily_count(synced: Engine, matcher: Matcher) -> None:
    page = Page(posts=[post("1001", UNSETTLED), post("1002", UNSETTLED + " again")])
    add_mentions(page, matcher)
    write_page(synced, page)
    with synced.begin() as conn:
        conn.execute(text("UPDATE posts SET deleted_at = created_at, deleted_reason = 'deleted' "
                          "WHERE platform_post_id = '1002'"))
    assert rows(synced, "SELECT term, posts FROM ambiguous_mentions_daily") == [("Clinton PD", 1)]


def twarc_line(tweets: list[dict]) -> str:
    users = [{"id": "1", "username": "someone", "name": "Someone"}]
    return json.dumps({"data": tweets, "includes": {"users": users}, "meta": {"result_count": len(tweets)}})


def tweet(i: int, body: str) -> dict:
    pid = str(1_700_000_000_000_000_000 + i)
    return {"id": pid, "text": body, "author_id": "1", "created_at": "2026-10-01T12:00:00.000Z", "lang": "en",
            "edit_history_tweet_ids": [pid],
            "public_metrics": {"like_count": 0, "retweet_count": 0, "reply_count": 0, "quote_count": 0}}


def test_imported_posts_keep_their_ambiguities(synced: Engine, matcher: Matcher, tmp_path: Path) -> None:
    """An archive import keeps only posts that name an agency, and now those with an unsettled name too."""
    path = tmp_path / "archive.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(twarc_line([tweet(1, UNSETTLED), tweet(2, SETTLED), tweet(3, "Lovely weather today")]) + "\n")
    summary = import_file(synced, "x", path, matcher=matcher)
    assert (summary.posts_read, summary.posts_kept) == (3, 2)
    assert rows(synced, "SELECT a.slug FROM post_mentions m JOIN agencies a ON a.id = m.agency_id") == [(IOWA,)]
    assert rows(synced, "SELECT p.text, am.term FROM ambiguous_mentions am JOIN posts p ON p.id = am.post_id") == [
        (UNSETTLED, "Clinton PD")]


def remerged(entries: list, curated: set[str] = frozenset()) -> list:
    """These agencies as the loader would merge them alone: shared names marked again (``curated``: slugs
    turned into curated entries, the default referents of the names they own)."""
    plain = [dataclasses.replace(e, ambiguous_aliases=(), default_aliases=(), generated=e.slug not in curated)
             for e in entries]
    return merge_generated([e for e in plain if not e.generated], [e for e in plain if e.generated])


def test_stored_ambiguities_follow_the_registry(store: Engine, registry: Registry, clintons: list[str]) -> None:
    """A sync matches the posts of stored ambiguities again: an agency of the same name added in another state
    joins the candidates; a curated Clinton, Iowa (the default referent of "Clinton PD") turns the row into
    Iowa's mention with its evidence; each pass says what it changed and a second pass changes nothing."""
    entries = [e for e in registry.entries if e.slug in {*clintons, "nypd"}]
    later = next(s for s in sorted(clintons) if s != IOWA)  # the Clinton the first registry lacks
    first = remerged([e for e in entries if e.slug != later])
    sync_agencies(store, first)
    page = Page(posts=[post("1001", UNSETTLED)], authors=[AuthorRecord("x", "1", "someone")])
    add_mentions(page, Matcher(Registry(first)))
    write_page(store, page)
    stored = rows(store, "SELECT candidates, candidate_count FROM ambiguous_mentions")
    assert [(sorted(json.loads(c) if isinstance(c, str) else c), n) for c, n in stored] == [
        (sorted(set(clintons) - {later}), len(clintons) - 1)]

    def follow(entries: list) -> dict[str, int]:
        sync_agencies(store, entries)
        return reconcile_ambiguities(store, lambda: Matcher(Registry(entries))).summary()

    everyone = remerged(entries)
    assert follow(everyone) == {"ambiguities_checked": 1, "ambiguities_attributed": 0, "ambiguities_refreshed": 1,
                                "ambiguities_dropped": 0}
    stored = rows(store, "SELECT term, candidates, candidate_count, start_offset, end_offset FROM ambiguous_mentions")
    assert [(t, sorted(json.loads(c) if isinstance(c, str) else c), n, s, e) for t, c, n, s, e in stored] == [
        ("Clinton PD", sorted(clintons), len(clintons), 0, 10)]
    assert follow(everyone)["ambiguities_refreshed"] == 0, "a second pass changes nothing"

    curated = remerged(entries, curated={IOWA})
    assert follow(curated) == {"ambiguities_checked": 1, "ambiguities_attributed": 1, "ambiguities_refreshed": 0,
                               "ambiguities_dropped": 0}
    assert rows(store, "SELECT p.platform_post_id, a.slug, m.matched_term, m.match_kind, m.start_offset, "
                       "m.end_offset FROM post_mentions m JOIN posts p ON p.id = m.post_id "
                       "JOIN agencies a ON a.id = m.agency_id") == [("1001", IOWA, "Clinton PD", "alias", 0, 10)]
    assert rows(store, "SELECT count(*) FROM ambiguous_mentions") == [(0,)]
    assert rows(store, "SELECT count(*) FROM ambiguous_mentions_daily") == [(0,)]
    assert follow(curated)["ambiguities_checked"] == 0
