"""X and Reddit query compilers: fit the platform limits, cover every agency, stay deterministic."""

from __future__ import annotations

import hashlib
import re

import pytest
from trustwatch.collectors.agencies import (
    DEFAULT_GLOBAL_SUBREDDITS,
    AgencyEntry,
    QueryError,
    Registry,
    RegistryError,
    compile_reddit_queries,
    compile_x_queries,
    load_registry,
)

SUFFIX = "-is:retweet lang:en"

# What the X sandbox evaluates: OR, quoted phrases, @handle, #hashtag, bare words, parentheses,
# -is:retweet and lang:xx.  Anything else in a compiled query is a bug.
_X_TOKEN = re.compile(
    r'\s+|\(|\)|"[^"]+"|OR\b|-is:retweet\b|lang:[a-z]{2}\b|@[A-Za-z0-9_]{1,15}\b|#\w+|[A-Za-z0-9_]+'
)


def assert_x_syntax(text: str) -> None:
    pos = depth = 0
    while pos < len(text):
        m = _X_TOKEN.match(text, pos)
        assert m is not None, f"unexpected syntax at {text[pos:pos + 30]!r} in {text!r}"
        depth += {"(": 1, ")": -1}.get(m.group(), 0)
        assert depth >= 0, text
        pos = m.end()
    assert depth == 0, text


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.mark.parametrize("limit", [512, 1024, 4096])
def test_x_queries_fit_cover_every_agency_and_use_known_syntax(registry: Registry, limit: int) -> None:
    queries = compile_x_queries(registry, max_query_length=limit, suffix=SUFFIX)
    covered = set()
    for q in queries:
        assert len(q.text) <= limit
        assert q.text.endswith(") " + SUFFIX)
        assert_x_syntax(q.text)
        covered.update(q.agency_slugs)
    assert covered == {e.slug for e in registry.tracked()}
    texts = "\n".join(q.text for q in queries)
    for entry in registry.entries:
        for handle in entry.x_handles:
            assert f"@{handle}" in texts
    # Packing, not one query per agency: within one query of the lower bound.
    total = sum(len(q.text) for q in queries)
    assert len(queries) <= total // limit + 2
    assert len(queries) < len(registry.tracked())


def test_x_packing_gets_fewer_queries_with_a_longer_limit(registry: Registry) -> None:
    counts = [len(compile_x_queries(registry, max_query_length=n)) for n in (512, 1024, 4096)]
    assert counts[0] > counts[1] > counts[2] >= 1


def test_x_queries_are_deterministic_and_versioned(registry: Registry) -> None:
    first = compile_x_queries(registry, 512, SUFFIX)
    second = compile_x_queries(load_registry(), 512, SUFFIX)
    assert first == second
    for n, q in enumerate(first, start=1):
        assert q.version == hashlib.sha256(q.text.encode()).hexdigest()[:16]
        assert q.key == f"x-q{n:02d}-{q.version[:8]}"
    assert len({q.key for q in first}) == len(first)


def test_each_agency_sits_in_one_query_and_a_change_makes_a_new_version(registry: Registry) -> None:
    before = compile_x_queries(registry, 512)
    holders = [q for q in before if "nypd" in q.agency_slugs]
    assert len(holders) == 1
    for slug in {e.slug for e in registry.tracked()}:
        assert sum(slug in q.agency_slugs for q in before) == 1, slug
    entries = [
        AgencyEntry(**{**e.__dict__, "x_handles": (*e.x_handles, "NYPD_Extra")}) if e.slug == "nypd" else e
        for e in registry.entries
    ]
    after = compile_x_queries(Registry(entries), 512)
    new_holder = next(q for q in after if "nypd" in q.agency_slugs)
    assert "@NYPD_Extra" in new_holder.text
    assert new_holder.version not in {q.version for q in before}


def test_x_queries_for_selected_agencies(registry: Registry) -> None:
    queries = compile_x_queries(registry, 512, agencies=["nypd", "austin-pd"])
    assert len(queries) == 1
    q = queries[0]
    assert q.agency_slugs == ("austin-pd", "nypd")
    assert "@NYPDnews" in q.text and "@Austin_Police" in q.text
    assert '"Austin Police"' in q.text and "(APD Austin)" in q.text
    assert "LAPD" not in q.text
    assert "-is:retweet" not in q.text  # no suffix asked for
    with pytest.raises(RegistryError, match="no-such"):
        compile_x_queries(registry, agencies=["no-such"])


def test_ambiguous_and_exact_case_terms_are_not_searched_alone(registry: Registry) -> None:
    texts = " ".join(q.text for q in compile_x_queries(registry, 4096))
    assert not re.search(r"(?<![(\w])APD\b", texts)  # only inside "(APD Austin)"-style groups
    assert " ICE " not in texts and "OR ICE OR" not in texts


def test_term_that_cannot_fit_is_a_clear_error(registry: Registry) -> None:
    entry = AgencyEntry(
        slug="long-name", name="Department " + "of Very Long Names " * 30, kind="campus", jurisdiction=None,
        state="TX", aliases=(), x_handles=(), hashtags=(), subreddits=(),
    )
    reg = Registry([*registry.entries, entry])
    with pytest.raises(QueryError, match=r"term \"Department of Very Long.*agency 'long-name'.*limit of 512"):
        compile_x_queries(reg, 512, SUFFIX, agencies=["long-name"])
    assert compile_x_queries(reg, 1024, agencies=["long-name"])[0].agency_slugs == ("long-name",)


def test_reddit_queries_fit_and_search_global_and_own_subreddits(registry: Registry) -> None:
    queries = compile_reddit_queries(registry)
    assert queries == compile_reddit_queries(load_registry())
    global_ = [q for q in queries if q.subreddits == DEFAULT_GLOBAL_SUBREDDITS]
    local = [q for q in queries if q.subreddits != DEFAULT_GLOBAL_SUBREDDITS]
    assert global_ and local
    for q in queries:
        assert len(q.text) <= 512
        assert q.text and q.subreddits and q.agency_slugs
        assert re.fullmatch(r'(?:"[^"]+"|[A-Za-z0-9_]+)(?: OR (?:"[^"]+"|[A-Za-z0-9_]+))*', q.text), q.text
        assert q.key.startswith("reddit-") and q.version[:8] in q.key
    assert {s for q in global_ for s in q.agency_slugs} == {e.slug for e in registry.tracked()}
    own = {e.slug: set(e.subreddits) for e in registry.tracked() if e.subreddits}
    for slug, subs in own.items():
        assert any(slug in q.agency_slugs and subs <= set(q.subreddits) for q in local), slug
    nyc = next(q for q in local if "nyc" in q.subreddits)
    assert "police" in nyc.text.split(" OR ") and "NYPD" in nyc.text.split(" OR ")
    global_terms = {t for q in global_ for t in q.text.split(" OR ")}
    # "New York City Police" also finds "... Police Department": the longer phrase is left out.
    assert {"NYPD", '"New York City Police"', '"New York Police Department"'} <= global_terms
    assert '"New York City Police Department"' not in global_terms
    assert "APD" not in global_terms and "ICE" not in global_terms


def test_reddit_global_subreddits_are_configurable(registry: Registry) -> None:
    queries = compile_reddit_queries(registry, global_subreddits=["r/news", "worldnews"], agencies=["fbi"])
    assert [q.subreddits for q in queries] == [("news", "worldnews")]
    assert "FBI" in queries[0].text.split(" OR ")
    assert compile_reddit_queries(registry, global_subreddits=[], agencies=["fbi"]) == []
