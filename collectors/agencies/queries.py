"""Query compilers: X search queries and Reddit searches packed from the tracked agencies' terms.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustwatch.collectors.agencies.registry import AgencyEntry, Registry, _strip_prefix
from trustwatch.collectors.agencies.text import normalize_term

DEFAULT_GLOBAL_SUBREDDITS: tuple[str, ...] = ("police", "ProtectAndServe", "Bad_Cop_No_Donut", "news")
REDDIT_MAX_QUERY_LENGTH = 512
X_QUERY_LENGTHS: tuple[int, ...] = (512, 1024, 4096)


class QueryError(ValueError):
    """A query that cannot be compiled (e.g. one term longer than the platform allows)."""


@dataclass(frozen=True)
class XQuery:
    """One X search query; ``version`` changes whenever the text does."""

    key: str
    text: str
    version: str
    agency_slugs: tuple[str, ...]


@dataclass(frozen=True)
class RedditQuery:
    """One Reddit search; the collector joins ``subreddits`` with '+'."""

    key: str
    text: str
    subreddits: tuple[str, ...]
    version: str
    agency_slugs: tuple[str, ...]


_BARE_WORD_RE = re.compile(r"^[A-Za-z0-9_]+$")
_X_OPERATOR_WORDS = frozenset({"or", "and", "not"})


def _quote(term: str) -> str:
    """A bare word when X/Reddit would read it as one, else a quoted phrase."""
    if _BARE_WORD_RE.match(term) and term.lower() not in _X_OPERATOR_WORDS:
        return term
    return f'"{term}"'


def query_version(text: str) -> str:
    """Hash of a query's text: the ledger keeps it so a changed query is a new version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _phrase_terms(entry: AgencyEntry) -> list[str]:
    """Name and unambiguous aliases, minus those another kept term already finds as a phrase."""
    # A shared name this agency is the default referent of ("Houston Police") is searched as its own.
    ambiguous = [a for a in entry.ambiguous_aliases if a not in entry.default_aliases]
    skip = {normalize_term(a) for a in (*ambiguous, *entry.exact_case_aliases)}
    terms: dict[str, str] = {}
    for term in entry.terms():
        key = normalize_term(term)
        if key not in skip and key not in terms:
            terms[key] = term
    # Search is by phrase: "Chicago Police" already finds "Chicago Police Department".
    keys = list(terms)
    kept = [
        k for k in keys
        if not any(o != k and f" {o} " in f" {k} " for o in keys)
    ]
    return [terms[k] for k in kept]


def _x_terms(entry: AgencyEntry) -> list[str]:
    """Every X search term for one agency, in registry order."""
    out = [_quote(t) for t in _phrase_terms(entry)]
    out += [f"@{h}" for h in entry.x_handles]
    out += [f"#{h}" for h in entry.hashtags]
    if entry.jurisdiction:
        for amb in entry.ambiguous_aliases:
            if amb not in entry.exact_case_aliases and amb not in entry.default_aliases:
                out.append(f"({_quote(amb)} {_quote(entry.jurisdiction)})")
    return list(dict.fromkeys(out))


def _pack(
    items: Sequence[tuple[str, str]], limit: int, wrap: Any, what: str
) -> list[tuple[str, tuple[str, ...]]]:
    """First-fit packing of agencies' (slug, term) lists into OR-joined texts within ``limit``.

    An agency's terms stay in one query whenever they fit in one, so a query's ``agency_slugs`` are
    complete for each agency it names; only an agency too big for one query is split.
    """
    by_agency: dict[str, list[str]] = {}
    for slug, term in items:
        if len(wrap([term])) > limit:
            raise QueryError(
                f"{what}: term {term} of agency '{slug}' needs {len(wrap([term]))} characters with the "
                f"query's fixed parts, over the limit of {limit}"
            )
        by_agency.setdefault(slug, []).append(term)
    bins: list[tuple[list[str], list[str]]] = []  # (terms, slugs)
    for slug, terms in by_agency.items():
        if len(wrap(terms)) <= limit:
            for bin_terms, bin_slugs in bins:
                if len(wrap(bin_terms + terms)) <= limit:
                    bin_terms.extend(terms)
                    bin_slugs.append(slug)
                    break
            else:
                bins.append((list(terms), [slug]))
            continue
        current: list[str] = []
        for term in terms:  # too big for one query: split it over as few as needed
            if current and len(wrap([*current, term])) > limit:
                bins.append((current, [slug]))
                current = []
            current.append(term)
        bins.append((current, [slug]))
    return [(wrap(terms), tuple(slugs)) for terms, slugs in bins]


def compile_x_queries(
    registry: Registry,
    max_query_length: int = 512,
    suffix: str = "",
    agencies: Sequence[str] | None = None,
) -> list[XQuery]:
    """Pack every agency term into as few X queries as fit ``max_query_length``; deterministic."""
    if max_query_length < 16:
        raise QueryError(f"max_query_length {max_query_length} is too small for any query")
    suffix = " ".join(suffix.split())
    entries = sorted(registry.select(agencies), key=lambda e: e.slug)
    items = [(e.slug, term) for e in entries for term in _x_terms(e)]

    def wrap(terms: list[str]) -> str:
        body = " OR ".join(terms)
        if suffix:
            body = f"({body}) {suffix}" if len(terms) > 1 or " " in body else f"{body} {suffix}"
        return body

    queries = []
    for n, (text, slugs) in enumerate(_pack(items, max_query_length, wrap, "X query"), start=1):
        version = query_version(text)
        key = f"x-q{n:02d}-{version[:8]}"
        queries.append(XQuery(key=key, text=text, version=version, agency_slugs=slugs))
    return queries


def _reddit_query(
    text: str, subreddits: Sequence[str], slugs: Sequence[str], prefix: str, n: int
) -> RedditQuery:
    version = query_version(text + "\x00" + "+".join(subreddits))
    return RedditQuery(
        key=f"reddit-{prefix}{n:02d}-{version[:8]}",
        text=text,
        subreddits=tuple(subreddits),
        version=version,
        agency_slugs=tuple(slugs),
    )


def compile_reddit_queries(
    registry: Registry,
    global_subreddits: Sequence[str] = DEFAULT_GLOBAL_SUBREDDITS,
    agencies: Sequence[str] | None = None,
    max_subreddits: int = 20,
) -> list[RedditQuery]:
    """Reddit searches: agency names in the global subreddits, police words in the agencies' own.

    Local queries rely on the community rule: in r/Austin, "police" or "APD" means Austin's police.
    """
    entries = sorted(registry.select(agencies), key=lambda e: e.slug)
    limit = REDDIT_MAX_QUERY_LENGTH

    def wrap(terms: list[str]) -> str:
        return " OR ".join(terms)

    queries: list[RedditQuery] = []
    globals_ = [_strip_prefix([s], ("/r/", "r/"))[0] for s in global_subreddits]
    if globals_:
        items = [(e.slug, _quote(t)) for e in entries for t in _phrase_terms(e)]
        for n, (text, slugs) in enumerate(_pack(items, limit, wrap, "Reddit query"), start=1):
            queries.append(_reddit_query(text, globals_, slugs, "g", n))

    # Local: group agencies' subreddits; the text is the police words plus short aliases.
    chunks: list[tuple[list[str], list[str], list[str]]] = []  # (terms, subreddits, slugs)
    for e in entries:
        if not e.subreddits:
            continue
        words = [_quote(w) for w in e.community_words]
        words += [_quote(a) for a in e.aliases if a not in e.exact_case_aliases
                  and not any(w in normalize_term(a).split() for w in ("police", "sheriff", "cops"))]
        if chunks:
            terms, subs, slugs = chunks[-1]
            merged = list(dict.fromkeys(terms + words))
            new_subs = list(dict.fromkeys(subs + list(e.subreddits)))
            if len(wrap(merged)) <= limit and len(new_subs) <= max_subreddits:
                chunks[-1] = (merged, new_subs, [*slugs, e.slug])
                continue
        terms = list(dict.fromkeys(words))
        while len(wrap(terms)) > limit:
            terms.pop()  # the longest tail aliases go first; police words lead the list
        chunks.append((terms, list(e.subreddits), [e.slug]))
    for n, (terms, subs, slugs) in enumerate(chunks, start=1):
        queries.append(_reddit_query(wrap(terms), subs, slugs, "l", n))
    return queries
