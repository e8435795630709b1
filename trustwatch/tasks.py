"""The functions Airflow tasks call; the command line calls the same ones.

DAG files stay thin (schedule, params, wiring) and import this module inside their tasks, so parsing a
DAG file never pays for tweepy, praw or SQLAlchemy, and everything here is testable without Airflow.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: How far back X's search/recent endpoint reaches.
X_RECENT_REACH = dt.timedelta(days=7)
#: X refuses an end_time less than this long before the request.
X_END_TIME_MARGIN = dt.timedelta(seconds=10)
PLATFORMS = ("x", "reddit")
#: A run without dates reads one hour: the most recent complete hour the ledger does not show read ...
DEFAULT_WINDOW = dt.timedelta(hours=1)
#: ... looking back this far; older holes are a backfill's job (`airflow backfill create`, `trustwatch collect`).
UNREAD_LOOKBACK = dt.timedelta(hours=24)


class RequestError(ValueError):
    """A collection request (trigger form, CLI) that cannot be served; the message says what to change."""


@functools.cache
def _engine_for(url: str) -> Engine:
    from trustwatch.models.db import make_engine

    return make_engine(url)


@functools.cache
def _checked(url: str) -> Engine:
    from trustwatch import migrate
    from trustwatch.settings import ConfigError, redact_url, store_url

    eng = _engine_for(url)
    have, want = migrate.current(eng), migrate.head()
    if have != want:
        where = f"{redact_url(url)} ({store_url().source})"
        state = "has no trustwatch schema" if have is None else f"is at schema revision {have}, the code needs {want}"
        raise ConfigError(f"the store at {where} {state}: run `trustwatch db upgrade`")
    return eng


def engine(check: bool = True) -> Engine:
    """The configured store's engine (one per process and URL), checked once to be migrated."""
    from trustwatch.settings import store_url

    url = store_url().url
    return _checked(url) if check else _engine_for(url)


def _registry_dir() -> Path | None:
    """TRUSTWATCH_AGENCIES_DIR, or None for the registry shipped with trustwatch."""
    import os

    directory = os.environ.get("TRUSTWATCH_AGENCIES_DIR")
    return Path(directory) if directory else None


@functools.cache
def _registry_cached(directory: Path | None) -> Any:
    from trustwatch.collectors.agencies.cache import load_registry_cached

    return load_registry_cached(directory)


def registry() -> Any:
    """The agency registry (agencies/*.yaml, or TRUSTWATCH_AGENCIES_DIR), parsed once per process and read
    from the on-disk cache when the same files were parsed before (every Airflow task is a new process)."""
    return _registry_cached(_registry_dir())


@functools.cache
def _matcher_cached(directory: Path | None) -> Any:
    from trustwatch.collectors.agencies.cache import load_matcher_cached

    return load_matcher_cached(directory)


def matcher() -> Any:
    """The matcher over the current registry, built once per process (and cached on disk like the registry);
    only the tasks that match posts pay for it."""
    return _matcher_cached(_registry_dir())


def upgrade_store() -> str:
    """Migrate the configured store to the latest schema; returns the revision."""
    from trustwatch import migrate

    eng = engine(check=False)
    migrate.upgrade(eng)
    _checked.cache_clear()
    return migrate.current(eng) or "base"


def sync_registry(recheck: bool = False) -> dict[str, Any]:
    """Load the registry into the store: upsert entries, deactivate removed ones; then match the posts of the
    stored ambiguities again (``ambiguities_*`` in the result) when an agency changed, or always with
    ``recheck`` (``trustwatch agencies sync``), so they follow the registry (collectors/ambiguities.py).

    Every collect run starts with this step, and the registry rarely changes between runs: when the digest
    of the registry files and code (:func:`registry_sync_digest`) equals the one the store recorded at its
    last sync, the store already holds these entries and nothing is parsed or compared (``unchanged`` in
    the result).  ``recheck`` compares anyway (after the agencies table was edited by hand).  On a
    partitioned PostgreSQL store it first prepares the coming months' partitions, changed registry or not.
    """
    from trustwatch.collectors.ambiguities import Reconciled, reconcile_ambiguities
    from trustwatch.models.partitions import prepare
    from trustwatch.models.store import last_registry_sync, sync_agencies

    eng = engine()
    # PostgreSQL: the coming months' partitions exist before their posts arrive (a no-op on SQLite)
    created = prepare(eng)
    if created:
        log.info("partitions created: %s", ", ".join(created))
    digest = registry_sync_digest()
    last = None if recheck else last_registry_sync(eng)
    if last is not None and last["digest"] == digest:
        result: dict[str, Any] = {"agencies": last["agencies"], "changed": 0, "deactivated": 0,
                                  **Reconciled().summary(), "unchanged": True}
        log.info("agency registry unchanged since the store's last sync (%s): %s", last["synced_at"], result)
        return result
    # another process may sync the same registry meanwhile: the sync waits for it, then finds its digest
    result = {"unchanged": False, **sync_agencies(eng, registry().entries, digest=digest, if_changed=not recheck)}
    changed = bool(result.get("changed") or result.get("deactivated"))
    result.update((reconcile_ambiguities(eng, matcher) if recheck or changed else Reconciled()).summary())
    log.info("agency registry synced: %s", result)
    return result


def registry_sync_digest() -> str:
    """What a sync writes, as a digest: the registry files and the code that parses them
    (``registry_digest``), the code that writes them (models/store.py) and the store's schema revision."""
    import hashlib

    from trustwatch import migrate
    from trustwatch.collectors.agencies.cache import registry_digest
    from trustwatch.models import store

    digest = hashlib.sha256(registry_digest(_registry_dir()).encode())
    digest.update(Path(store.__file__).read_bytes())
    digest.update(str(migrate.head()).encode())
    return digest.hexdigest()


def parse_time(value: str | dt.datetime | None, name: str) -> dt.datetime | None:
    """An ISO-8601 time from a form or the CLI; naive values are taken as UTC (and said so in the docs)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise RequestError(
                f"{name} {value!r} is not a date-time; use ISO 8601, e.g. 2026-11-20T00:00:00Z"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00 is outside what UTC can hold
        raise RequestError(
            f"{name} {value!s:.40} is out of range: give a date-time between 2005 and now, e.g. 2026-11-20T00:00:00Z"
        ) from None


def _whole_seconds(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Widen a window to whole seconds: X takes start_time/end_time in seconds (tweepy drops the fraction,
    which would leave the end's fraction of a second unread); the start rounds down, the end up."""
    start_s = start.replace(microsecond=0)
    end_s = end.replace(microsecond=0) + (dt.timedelta(seconds=1) if end.microsecond else dt.timedelta())
    if (start_s, end_s) != (start, end):
        log.warning("window rounded to whole seconds (X takes seconds): [%s, %s)", start_s.isoformat(),
                    end_s.isoformat())
    return start_s, end_s


def check_agencies(slugs: Sequence[str] | None) -> list[str]:
    """Return the slugs if all are in the registry; otherwise a RequestError naming the unknown ones."""
    if not slugs:
        return []
    known = {e.slug for e in registry().entries}
    unknown = [s for s in slugs if s not in known]
    if unknown:
        hints = []
        for slug in unknown:
            close = difflib.get_close_matches(slug, sorted(known), n=3)
            hints.append(f"{slug!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise RequestError(
            f"unknown agenc{'y' if len(unknown) == 1 else 'ies'} {', '.join(hints)}: use slugs from "
            "agencies/*.yaml (`trustwatch agencies list`)"
        )
    return list(dict.fromkeys(slugs))


def x_endpoint() -> str:
    """The configured X search endpoint ('recent' or 'all'); 'recent' when no connection is configured."""
    from trustwatch.settings import X_CONN_ID, find_connection

    conn = find_connection(X_CONN_ID)
    return str((conn.extra if conn else {}).get("endpoint", "recent"))


def validate_request(
    platform: str,
    start: str | dt.datetime | None,
    end: str | dt.datetime | None,
    agencies: Sequence[str] | None,
    data_interval_start: dt.datetime | None = None,
    data_interval_end: dt.datetime | None = None,
    manual: bool = False,
    now: dt.datetime | None = None,
    unread: bool = False,
) -> dict[str, Any]:
    """Decide the window of a run and check the request; a bad one raises RequestError.

    A scheduled run covers its data interval; a manual run covers the form's start/end.  When the form
    leaves them empty: with ``unread`` (the trigger form) the most recent complete hour that the ledger
    does not show read for these agencies (:func:`unread_window`; the result then carries
    ``nothing_new``, the sentence for the run summary when every recent hour was read already);
    without it, the last 60 minutes.
    """
    if platform not in PLATFORMS:
        raise RequestError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    start_t, end_t = parse_time(start, "start"), parse_time(end, "end")
    # X refuses an end_time less than 10 s before the request: a manual run ending "now" is clamped to the
    # latest end X accepts (a scheduled run keeps its interval: the collector waits the seconds instead)
    latest_x_end = (now - X_END_TIME_MARGIN).replace(microsecond=0)
    nothing_new: str | None = None
    if start_t is None and end_t is None:
        if (manual or data_interval_start is None or data_interval_end is None) and unread:
            picked = unread_window(platform, check_agencies(agencies), now=now)
            start_t, end_t, nothing_new = picked["start"], picked["end"], picked["nothing_new"]
        elif manual or data_interval_start is None or data_interval_end is None:
            end_t = (latest_x_end if platform == "x" else now).replace(second=0, microsecond=0)
            start_t = end_t - DEFAULT_WINDOW
        else:
            start_t, end_t = data_interval_start.astimezone(dt.UTC), data_interval_end.astimezone(dt.UTC)
    elif platform == "x" and end_t is not None and latest_x_end < end_t <= now + dt.timedelta(minutes=1):
        log.info("end %s is less than 10 s before now: clamped to %s, the latest end X accepts",
                 end_t.isoformat(), latest_x_end.isoformat())
        end_t = latest_x_end
    elif start_t is None or end_t is None:
        raise RequestError("give both start and end, or neither (a run without dates covers the last hour)")
    assert start_t is not None and end_t is not None
    start_t, end_t = _whole_seconds(start_t, end_t)
    if end_t <= start_t:
        raise RequestError(
            f"end {end_t.isoformat()} is not after start {start_t.isoformat()}: swap them or widen the range"
        )
    if end_t > now + dt.timedelta(minutes=1):
        raise RequestError(f"end {end_t.isoformat()} is in the future: set it to now or earlier")
    if platform == "x" and x_endpoint() == "recent" and start_t < now - X_RECENT_REACH:
        raise RequestError(
            f"start {start_t.isoformat()} is more than 7 days ago, beyond X's search/recent endpoint: "
            f"start at {(now - X_RECENT_REACH).isoformat(timespec='minutes')} or later, or use an access tier "
            "with search/all (x_api extra endpoint='all'), or import an archive (`trustwatch import x`)"
        )
    request = {"start": start_t.isoformat(), "end": end_t.isoformat(), "agencies": check_agencies(agencies)}
    if unread:
        request["nothing_new"] = nothing_new
    return request


def _hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _merged(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Union of half-open spans, as sorted disjoint spans (touching ones joined)."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _query_groups(platform: str, slugs: list[str]) -> list[list[tuple[str, str]]]:
    """The query sets whose ledger rows prove an hour read for ``slugs`` (empty: every active agency).

    Each set is a list of (key, version).  The first is what this run would send.  For a pick of agencies
    the second is the queries of every active agency (what the scheduled runs send) that search for one of
    them: those read the picked agencies' posts too, as long as each picked agency is in one of them.
    """
    own = compile_queries(platform, slugs or None)
    groups = [[(q["key"], q["version"]) for q in own]]
    if slugs:
        everyone = compile_queries(platform, None)
        related = [q for q in everyone if set(q.get("agency_slugs") or ()) & set(slugs)]
        if {s for q in related for s in q.get("agency_slugs") or ()} >= set(slugs):
            groups.append([(q["key"], q["version"]) for q in related])
    return [g for g in groups if g]


def unread_window(platform: str, agencies: Sequence[str] | None = None, now: dt.datetime | None = None,
                  lookback: dt.timedelta = UNREAD_LOOKBACK) -> dict[str, Any]:
    """The window a trigger without dates collects: the most recent complete hour not yet read.

    An hour counts as read when, for every query of these agencies, ``success`` rows of the ledger without
    a coverage gap (scheduled runs, backfills, earlier triggers, ``trustwatch collect``) cover it, so a
    trigger right after the scheduled run no longer reads (and pays for) the same hour again and stores
    nothing.  When every hour of ``lookback`` was read, the result is the latest of them with
    ``nothing_new``: a sentence for the run summary naming that window and the run that read it.
    Returns ``{"start", "end", "nothing_new"}`` (datetimes, and a string or None).
    """
    from sqlalchemy import bindparam, select

    from trustwatch.collectors.runner import proof_conditions, proves_whole
    from trustwatch.models.tables import CollectionRun

    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    # the hour in progress is not complete; X also refuses an end less than 10 s before the request
    newest_end = _hour_floor(now - X_END_TIME_MARGIN if platform == "x" else now)
    hours = [(newest_end - (i + 1) * DEFAULT_WINDOW, newest_end - i * DEFAULT_WINDOW)
             for i in range(max(1, int(lookback / DEFAULT_WINDOW)))]
    slugs = list(agencies or [])
    groups = _query_groups(platform, slugs)
    keys = sorted({key for group in groups for key, _version in group})
    t = CollectionRun.__table__
    rows = []
    if keys:
        with engine().connect() as conn:
            rows = conn.execute(
                select(t.c.id, t.c.query_key, t.c.query_version, t.c.window_start, t.c.window_end, t.c.notes,
                       t.c.dag_run_id)
                .where(t.c.platform == platform, *proof_conditions(t),
                       t.c.query_key.in_(bindparam("keys", expanding=True)),
                       t.c.window_start < newest_end, t.c.window_end > hours[-1][0]),
                {"keys": keys},
            ).all()
    spans: dict[tuple[str, str], list[tuple[dt.datetime, dt.datetime]]] = {}
    for row in rows:
        if proves_whole(row.notes):
            spans.setdefault((row.query_key, row.query_version), []).append((row.window_start, row.window_end))
    covered = {query: _merged(found) for query, found in spans.items()}

    def read(hour: tuple[dt.datetime, dt.datetime], group: list[tuple[str, str]]) -> bool:
        return all(any(s <= hour[0] and hour[1] <= e for s, e in covered.get(query, ())) for query in group)

    who = f"agenc{'y' if len(slugs) == 1 else 'ies'} {', '.join(slugs)}" if slugs else "every active agency"
    for hour in hours:
        if not any(read(hour, group) for group in groups):
            if hour != hours[0]:
                log.info("%s: the latest hours were read already; the most recent one not read is [%s, %s)",
                         platform, hour[0].isoformat(), hour[1].isoformat())
            return {"start": hour[0], "end": hour[1], "nothing_new": None}
    latest = hours[0]
    group = next(g for g in groups if read(latest, g))
    runs = sorted({row.dag_run_id or f"ledger row {row.id}" for row in rows
                   if (row.query_key, row.query_version) in set(group)
                   and row.window_start <= latest[0] and latest[1] <= row.window_end})
    by = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    return {
        "start": latest[0],
        "end": latest[1],
        "nothing_new": (
            f"nothing new: every complete hour of the last {int(lookback / DEFAULT_WINDOW)} h was read already "
            f"for {who}; the last one read is [{latest[0].isoformat()}, {latest[1].isoformat()}) (by {by}). "
            f"The hour in progress is complete at {newest_end + DEFAULT_WINDOW:%H:%M} UTC; to read another "
            "window, give start and end in the form."
        ),
    }


def _x_settings_or_default() -> tuple[int, str]:
    from trustwatch.collectors.x import query_suffix
    from trustwatch.settings import X_CONN_ID, find_connection

    conn = find_connection(X_CONN_ID)
    extra = conn.extra if conn else {}
    return int(extra.get("max_query_length", 512)), query_suffix(extra)


def compile_queries(platform: str, agencies: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The compiled queries for a platform as plain dicts (XCom-friendly), optionally for some agencies."""
    from trustwatch.collectors import agencies as ag

    slugs = check_agencies(agencies) or None
    if platform == "x":
        max_len, suffix = _x_settings_or_default()
        queries = ag.compile_x_queries(registry(), max_query_length=max_len, suffix=suffix, agencies=slugs)
    elif platform == "reddit":
        queries = _reddit_plan(slugs, _reddit_global_subreddits())[0]
    else:
        raise RequestError(f"unknown platform {platform!r}")
    return [_query_dict(q) for q in queries]


def _reddit_extra() -> dict[str, Any]:
    from trustwatch.settings import REDDIT_CONN_ID, find_connection

    conn = find_connection(REDDIT_CONN_ID)
    return dict((conn.extra if conn else None) or {})


def _reddit_plan_kind() -> str:
    """'listing' (the default: listing-first, its cost does not grow with agencies) or 'search' (per-agency
    searches, the earlier plan): reddit_api extra ``plan``."""
    kind = str(_reddit_extra().get("plan") or "listing").strip().lower()
    if kind not in ("listing", "search"):
        raise RequestError(f"reddit_api extra 'plan' is {kind!r}; use 'listing' or 'search'")
    return kind


def _reddit_plan(slugs: Sequence[str] | None, global_subreddits: Sequence[str] | None = None
                 ) -> tuple[list[Any], Any]:
    """The Reddit queries and their requests-per-hour estimate; refuses (RequestError naming what to drop)
    a plan that does not fit Reddit's 100 requests per minute.

    ``plan = "listing"`` (default): new and comments listings of subreddit groups (collectors/reddit_plan.py);
    ``"search"``: searches over the global subreddits and one 'new' listing per agency subreddit.
    """
    from trustwatch.collectors import agencies as ag
    from trustwatch.collectors import reddit_plan as rp
    from trustwatch.collectors.reddit import plan_queries

    kwargs: dict[str, Any] = {"global_subreddits": tuple(global_subreddits)} if global_subreddits else {}
    if _reddit_plan_kind() == "listing":
        queries = rp.listing_first_queries(registry(), agencies=slugs, **kwargs)
    else:
        queries = plan_queries(ag.compile_reddit_queries(registry(), agencies=slugs, **kwargs), registry())
    tracked = len(slugs) if slugs else sum(1 for e in registry().entries if getattr(e, "active", True))
    plan = rp.estimate(queries, agencies=tracked, threads_per_hour=rp.threads_per_hour(engine(check=False)),
                       requests_per_thread=2.0)
    try:
        rp.check_budget(plan, registry(), queries)
    except rp.PlanError as exc:
        raise RequestError(str(exc)) from None
    return queries, plan


def _reddit_global_subreddits() -> list[str] | None:
    """The reddit_api extra ``subreddits`` (comma-separated or a list), None when not set."""
    extra_subs = _reddit_extra().get("subreddits")
    if not extra_subs:
        return None
    if isinstance(extra_subs, str):
        return [s.strip() for s in extra_subs.split(",") if s.strip()]
    return list(extra_subs)


def reddit_plan_estimate(agencies: Sequence[str] | None = None) -> dict[str, Any]:
    """The requests-per-hour estimate of the configured Reddit plan, for the dry run and the ledger."""
    plan = _reddit_plan(check_agencies(agencies) or None, _reddit_global_subreddits())[1]
    return {**plan.as_dict(), "plan": _reddit_plan_kind(), "description": plan.describe()}


def pick_agencies(states: Sequence[str] = (), kinds: Sequence[str] = ()) -> list[str]:
    """Slugs of the known agencies of these states and kinds (the trigger form's state picker)."""
    from trustwatch.collectors.agencies import RegistryError

    try:
        return [e.slug for e in registry().pick(states=states, kinds=kinds)]
    except RegistryError as exc:
        raise RequestError(str(exc)) from None


def estimate_monthly_reads(platform: str, agencies: Sequence[str] | None = None, days: int = 28) -> dict[str, Any]:
    """Posts a month the platform's queries would read for the tracked (or named) agencies.

    Measured, not guessed: distinct posts of the platform that mention those agencies in the store's
    newest ``days`` days, scaled to 30 days.  X bills reads per post, so this is what a tracked set
    costs against the monthly cap; agencies without collected history count as unknown.
    """
    from sqlalchemy import bindparam, func, select
    from sqlalchemy.exc import SQLAlchemyError

    from trustwatch.models.tables import Agency, Post, PostMention
    from trustwatch.settings import ConfigError

    reg = registry()
    slugs = [e.slug for e in reg.select(check_agencies(agencies) or None)]
    out: dict[str, Any] = {"platform": platform, "agencies": len(slugs), "window_days": days}
    try:
        eng = engine()
        with eng.connect() as conn:
            newest = conn.execute(select(func.max(Post.created_at)).where(Post.platform == platform)).scalar()
            if newest is None or not slugs:
                return {**out, "monthly_reads": None, "note": "no collected history to measure from"}
            since = newest - dt.timedelta(days=days)
            ids = select(Agency.id).where(Agency.slug.in_(bindparam("slugs", expanding=True)))
            posts = conn.execute(
                select(func.count(func.distinct(PostMention.post_id)))
                .join(Post, Post.id == PostMention.post_id)
                .where(Post.platform == platform, Post.created_at >= since, PostMention.agency_id.in_(ids)),
                {"slugs": slugs},
            ).scalar_one()
            seen = conn.execute(
                select(func.count(func.distinct(Agency.slug)))
                .join(PostMention, PostMention.agency_id == Agency.id)
                .join(Post, Post.id == PostMention.post_id)
                .where(Post.platform == platform, Post.created_at >= since,
                       Agency.slug.in_(bindparam("slugs", expanding=True))),
                {"slugs": slugs},
            ).scalar_one()
    except ConfigError as exc:  # no store configured, unreachable or not migrated: the queries still print
        return {**out, "monthly_reads": None, "note": f"store not available: {exc}"}
    except SQLAlchemyError as exc:  # the driver's text may quote the URL: its class is enough here
        return {**out, "monthly_reads": None, "note": f"store not available: {type(exc).__name__}"}
    return {**out, "monthly_reads": round(posts * 30 / days), "agencies_with_history": seen,
            "agencies_without_history": len(slugs) - seen, "measured_posts": posts}


def _query_dict(query: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(query).items()}


def _query_obj(platform: str, data: dict[str, Any]) -> Any:
    from trustwatch.collectors import agencies as ag

    if platform == "x":
        cls: Any = ag.XQuery
    else:
        from trustwatch.collectors.reddit import RedditQuery

        cls = RedditQuery
    fields = cls.__dataclass_fields__
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields})


def make_collector(platform: str) -> tuple[Any, tuple[str, ...]]:
    """The platform's collector from its Airflow connection, and the secrets to keep out of messages."""
    if platform == "x":
        from trustwatch.collectors.x import XCollector, XSettings

        settings = XSettings.from_connection()
        pacer = None
        if settings.endpoint == "all":
            # full-archive search is limited per app (1 request/s, 300 per 15 min): pace through the store,
            # shared by every collect task, not per task (issue 14.4)
            from trustwatch.models.ratelimit import SharedPacer, app_key

            pacer = SharedPacer(engine(), app_key("search/all", settings.bearer_token))
        return XCollector(settings, pacer=pacer), (settings.bearer_token,)
    if platform == "reddit":
        from trustwatch.collectors.reddit import RedditCollector, RedditSettings

        settings = RedditSettings.from_connection()
        return RedditCollector(settings, matcher()), (settings.client_secret,)
    raise RequestError(f"unknown platform {platform!r}")


def collect_query(
    platform: str,
    query: dict[str, Any],
    start: str,
    end: str,
    dry_run: bool = False,
    run_context: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Collect one compiled query over [start, end) into the store; returns the run summary."""
    from trustwatch.collectors.runner import run_query
    from trustwatch.records import Window

    window = Window(parse_time(start, "start"), parse_time(end, "end"))  # type: ignore[arg-type]
    collector, secrets = make_collector(platform)

    def report(summary: Any, result: Any) -> None:
        log.info("%s page %d: %d posts (%d new, %d rejected), %d requests so far", summary.query_key,
                 summary.pages, result.seen, result.new, result.rejected, summary.requests)
        if progress:
            print(f"  {summary.query_key} page {summary.pages}: {result.seen} posts, {result.new} new, "
                  f"{result.rejected} rejected", flush=True)

    summary = run_query(engine(), collector, _query_obj(platform, query), window, matcher=matcher(),
                        run_context=run_context, dry_run=dry_run, on_page=report, secrets=secrets)
    return summary.as_dict()


def revisit_reddit(now: str | dt.datetime | None = None, ages: str | None = None, budget: int | None = None,
                   run_context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read again the Reddit threads whose revisit is due at ``now`` (default: the current time), for
    late comments and final scores (``trustwatch.collectors.reddit_revisit``).  Ages and the per-thread
    request budget come from the arguments, else the reddit_api connection's extra ``revisit_ages``
    ("6h,24h,72h,7d") and ``revisit_budget``."""
    from trustwatch.collectors import reddit_revisit as rv
    from trustwatch.settings import REDDIT_CONN_ID, find_connection

    moment = parse_time(now, "now") if now is not None else dt.datetime.now(dt.UTC)
    conn = find_connection(REDDIT_CONN_ID)
    extra = (conn.extra if conn else None) or {}
    ages_text = ages or extra.get("revisit_ages")
    try:
        parsed = rv.parse_ages(str(ages_text)) if ages_text else rv.DEFAULT_AGES
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    per_thread = int(budget or extra.get("revisit_budget") or rv.DEFAULT_BUDGET)
    collector, secrets = make_collector("reddit")
    summary = rv.run_revisits(engine(), collector, matcher=matcher(), now=moment, ages=parsed,  # type: ignore[arg-type]
                              budget=per_thread, run_context=run_context, secrets=secrets)
    return summary.as_dict()


def summarize(platform: str, summaries: Sequence[dict[str, Any]], run_context: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """Totals of a DAG run's collect tasks, logged and kept in the ledger as a 'summary' row.

    ``outcome`` says in one sentence what the run did: the posts it stored, or that there was nothing new
    (``run_context["nothing_new"]``, from :func:`unread_window`, or every query's window read already), so
    a green run with 0 posts explains itself.
    """
    from trustwatch.models import store

    keys = ("pages", "requests", "posts_seen", "posts_new", "posts_updated", "rejected", "mentions", "api_errors")
    totals: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in summaries) for k in keys}
    totals["queries"] = len(summaries)
    totals["skipped_already_collected"] = sum(1 for s in summaries if s.get("skipped"))
    totals["coverage_gaps"] = [s["query_key"] for s in summaries if s.get("coverage_gap")]
    totals["expected_posts"] = sum(int(s.get("expected_posts") or 0) for s in summaries)
    totals["failed_queries"] = list((run_context or {}).get("failed_queries") or [])
    if platform == "reddit":
        try:
            totals["plan"] = reddit_plan_estimate()
        except RequestError as exc:  # the plan no longer fits: said in the ledger, the run is done
            totals["plan"] = {"error": str(exc)}
    starts = [s["window_start"] for s in summaries if s.get("window_start")]
    ends = [s["window_end"] for s in summaries if s.get("window_end")]
    if (run_context or {}).get("nothing_new"):
        totals["nothing_new"] = str(run_context["nothing_new"])  # type: ignore[index]
    totals["outcome"] = _outcome(totals, summaries, min(starts) if starts else None, max(ends) if ends else None)
    handle = store.open_run(
        engine(), platform=platform, query_key="summary", query_version="-",
        query_text=f"{len(summaries)} queries", source="summary",
        window_start=parse_time(min(starts), "start") if starts else None,
        window_end=parse_time(max(ends), "end") if ends else None,
        run_context={**(run_context or {}), "dag_run_id": (run_context or {}).get("dag_run_id")},
    )
    store.update_run(engine(), handle.run_id, status="failed" if totals["failed_queries"] else "success",
                     finished_at=store.utcnow(), requests=totals["requests"], posts_seen=totals["posts_seen"],
                     posts_new=totals["posts_new"], posts_updated=totals["posts_updated"], rejected=totals["rejected"],
                     api_errors=totals["api_errors"], pages=totals["pages"],
                     coverage_gap=bool(totals["coverage_gaps"]), notes=totals)
    log.info("%s run summary: %s", platform, totals["outcome"])
    log.info("%s run totals: %s", platform, totals)
    return totals


def _outcome(totals: dict[str, Any], summaries: Sequence[dict[str, Any]], start: str | None, end: str | None
             ) -> str:
    """The run summary's one sentence: what was stored, or why nothing was."""
    window = f"[{start}, {end})" if start and end else "the window"
    failed = totals["failed_queries"]
    if failed:
        return (f"{len(failed)} of {totals['queries'] + len(failed)} queries failed ({', '.join(failed)}); "
                "their windows are gaps in the ledger")
    if totals.get("nothing_new"):
        return str(totals["nothing_new"])
    if not summaries:
        return f"no queries ran for {window}"
    if all(s.get("status") == "dry_run" for s in summaries):
        return f"dry run: about {totals['expected_posts']} posts in {window}; nothing stored"
    if all(s.get("skipped") for s in summaries):
        return (f"nothing new: {window} was read already by earlier runs (the ledger's success rows for the same "
                "queries), so nothing was read again")
    return (f"{totals['posts_new']} new posts stored and {totals['posts_updated']} seen again, of "
            f"{totals['posts_seen']} read in {window}")


def import_archive(platform: str, paths: Sequence[str], keep_all: bool = False, progress: bool = False,
                   run_context: dict[str, Any] | None = None, raise_on_failure: bool = True) -> list[dict[str, Any]]:
    """Import archive files (or every file of a folder) through the write path; one ledger row per file.

    Each file fails alone (unreadable, not an archive, no line of posts): the files after it are imported,
    and then, with ``raise_on_failure``, one ArchiveError names every failed file (the CLI prints each
    file's line itself instead).
    """
    from dataclasses import asdict

    from trustwatch.collectors.archive import ArchiveError, ImportSummary, import_file, iter_files
    from trustwatch.models.store import RunLeased

    if platform not in PLATFORMS:
        raise RequestError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    if not paths or any(not str(p).strip() for p in paths):
        raise RequestError("give the path of an archive file, or of a folder of them, as the worker sees it")
    left_out: list[str] = []
    files = list(iter_files(list(paths), left_out))
    for note in left_out:
        log.warning("%s", note)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise RequestError(f"no such file: {', '.join(missing)} (give paths readable where the task runs)")
    if not files:
        raise RequestError(f"no files to import in {', '.join(paths)}"
                           + (f" ({'; '.join(left_out)})" if left_out else ""))
    sync_registry()
    results = []
    for path in files:
        try:
            summary = import_file(engine(), platform, path, matcher=matcher(), keep_all=keep_all,
                                  progress=progress, run_context=run_context)
        except (ArchiveError, RunLeased) as exc:  # unreadable, not an archive, or being imported right now
            summary = ImportSummary(file=str(path), platform=platform, run_id=0, status="failed", error=str(exc))
            log.error("%s", summary.line())
        else:
            log.info("%s", summary.line())
        results.append(asdict(summary))
    failed = [r for r in results if r["status"] == "failed"]
    if failed and raise_on_failure:
        raise ArchiveError(f"{len(failed)} of {len(results)} files failed (the others were imported): "
                           + "; ".join(str(r["error"]) for r in failed))
    return results


def compliance(max_age_days: float | None = None, platforms: Sequence[str] | None = None,
               run_context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check stored posts on every platform with a configured connection and tombstone what is gone.

    X goes through batch compliance jobs (all stored ids, not billed per post); the billed lookup of the
    newest ``TRUSTWATCH_COMPLIANCE_LOOKUP_HOURS`` (default 0: off) is the opt-in.  Reddit posts younger
    than ``max_age_days`` (``TRUSTWATCH_COMPLIANCE_MAX_AGE_DAYS``, 30) are looked up.  Jobs are polled every
    ``TRUSTWATCH_COMPLIANCE_POLL_SECONDS`` (30).  A platform without a connection is left out and said so;
    none at all is a configuration error.
    """
    import os

    from trustwatch.collectors.compliance import check_compliance
    from trustwatch.settings import REDDIT_CONN_ID, X_CONN_ID, ConfigError, find_connection

    def number(name: str, default: str, unit: str) -> float:
        raw = os.environ.get(name, default).strip() or default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of {unit}, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {raw!r}")
        return value

    if max_age_days is None:
        max_age_days = number("TRUSTWATCH_COMPLIANCE_MAX_AGE_DAYS", "30", "days")
    lookup_hours = number("TRUSTWATCH_COMPLIANCE_LOOKUP_HOURS", "0", "hours")
    poll_seconds = number("TRUSTWATCH_COMPLIANCE_POLL_SECONDS", "30", "seconds")
    wanted = list(platforms or PLATFORMS)
    unknown = [p for p in wanted if p not in PLATFORMS]
    if unknown:
        raise RequestError(f"unknown platform {unknown[0]!r}: use one of {', '.join(PLATFORMS)}")
    collectors: dict[str, Any] = {}
    secrets: tuple[str, ...] = ()
    left_out: list[str] = []
    for platform, conn_id in (("x", X_CONN_ID), ("reddit", REDDIT_CONN_ID)):
        if platform not in wanted:
            continue
        if find_connection(conn_id) is None:
            left_out.append(f"{platform}: connection '{conn_id}' is not configured")
            continue
        collectors[platform], platform_secrets = make_collector(platform)
        secrets += platform_secrets
    if not collectors:
        raise ConfigError("compliance needs the x_api or the reddit_api connection; " + "; ".join(left_out))
    for note in left_out:
        log.warning("compliance: %s, left out", note)
    result = check_compliance(engine(), x_collector=collectors.get("x"), reddit_collector=collectors.get("reddit"),
                              max_age_days=max_age_days, x_lookup_hours=lookup_hours, poll_interval=poll_seconds,
                              run_context=run_context, secrets=secrets)
    if left_out:
        result["left_out"] = left_out
    return result


def refresh_metrics(dry_run: bool = False, now: str | dt.datetime | None = None,
                    run_context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Look X posts up again at the configured ages (``x_api`` extra ``metrics_refresh``,
    ``refresh_ages_days``, ``monthly_read_budget``); a dry run only says what it would bill."""
    from trustwatch.collectors.refresh import RefreshError, RefreshSettings
    from trustwatch.collectors.refresh import refresh_metrics as run_refresh
    from trustwatch.settings import X_CONN_ID, ConfigError, get_connection

    try:
        settings = RefreshSettings.from_extra(get_connection(X_CONN_ID).extra)
    except RefreshError as exc:
        raise ConfigError(str(exc)) from None
    collector, secrets = make_collector("x")
    result = run_refresh(engine(), collector, settings, now=parse_time(now, "now"), dry_run=dry_run,
                         run_context=run_context, secrets=secrets)
    log.info("metrics refresh: %s", result)
    return result


def enrich(batch_size: int = 1000, workers: int | None = None) -> dict[str, Any]:
    """Score what the current scorer version has not scored, then refresh the touched trend rollups.

    ``workers``: scoring processes; None reads TRUSTWATCH_ENRICH_WORKERS, else uses the machine's cores.
    """
    from trustwatch.analysis import enrich as run_enrich

    result = run_enrich(engine(), batch_size=batch_size, workers=workers)
    log.info("enrichment: %s", result)
    return result


def reports_dir() -> Any:
    """Where the DAG writes its reports: TRUSTWATCH_REPORTS_DIR, else reports/ in the repository."""
    import os

    from trustwatch.settings import HOME_DIR

    return Path(os.environ.get("TRUSTWATCH_REPORTS_DIR", HOME_DIR / "reports"))


def report_path(run_time: dt.datetime | None = None) -> Path:
    """Where a scheduled report goes: named by the run's time (UTC, to the minute), so no run overwrites
    another and none is named after a missing logical date (asset-triggered runs have none)."""
    moment = (run_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return reports_dir() / f"trend-{moment:%Y-%m-%dT%H%MZ}.html"


def report(out: str | None = None, agencies: Sequence[str] | None = None, since: str | None = None,
           states: Sequence[str] | None = None, kinds: Sequence[str] | None = None) -> str:
    """Write the self-contained HTML trend report (of ``states`` and ``kinds`` only, when given); returns its
    path."""

    from trustwatch.analysis.report import ReportError, write_report

    since_date = None
    if since:
        try:
            since_date = dt.date.fromisoformat(since[:10])
        except ValueError:
            raise RequestError(f"since {since!r} is not a date; use YYYY-MM-DD") from None
    target = Path(out) if out else reports_dir() / f"trend-{dt.datetime.now(dt.UTC):%Y-%m-%d}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = write_report(engine(), target, agencies=check_agencies(agencies) or None, since=since_date,
                            states=states or None, kinds=kinds or None)
    except ReportError as exc:
        raise RequestError(str(exc)) from None
    return str(path)
