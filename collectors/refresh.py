"""Engagement refresh: look X posts up again at a few ages so likes and reposts do not freeze at first sight.

A post collected in its first hour shows the engagement of that hour forever unless it is read again, so
"top posts by engagement" would rank posts by how early they were collected.  :func:`refresh_metrics`
looks each live X post up again once it has passed each configured age (default 1 day and 7 days), 100
ids per ``GET /2/tweets`` request, and writes the answer through ``write_page``: the post's latest
metrics change and one row is appended to ``metric_snapshots`` per post (with the ledger row's run id).

Cost: X bills every post (and every expanded user) a lookup returns, so the lookup asks for the post's
fields and no expansions: one billed read per post per age.  A post is due at age ``a`` when it is older
than ``a`` and no snapshot was taken at or after ``created_at + a`` (one taken later, by a backfill or a
catch-up, counts), so each post costs at most one read per age, and a run that was missed catches up.
Posts older than the last age plus ``CATCH_UP`` are not read any more.  Reposts are skipped: their own
counts are always zero, the original carries the engagement.

Every run (and every dry run) is a ledger row (``collection_runs``, source ``refresh``): ``posts_seen`` is
the billed reads, ``notes`` hold the due posts, the reads, the month's spend and the budget.  The monthly
read budget (``x_api`` extra ``monthly_read_budget``) counts every X read the ledger holds this calendar
month (UTC); a refresh reads only what fits under it and records the rest as skipped (``coverage_gap``
true, ``notes.skipped_over_budget``).  The off switch is the extra ``metrics_refresh: false`` (or
``TRUSTWATCH_METRICS_REFRESH=off``); ``refresh_ages_days`` sets the ages.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from trustwatch.collectors.x import TWEET_FIELDS, normalize_x_page
from trustwatch.models import store
from trustwatch.models.tables import CollectionRun, MetricSnapshot, Post

log = logging.getLogger(__name__)

SOURCE = "refresh"
QUERY_KEY = "metrics-refresh"
QUERY_VERSION = "1"
MAX_BATCH = 100
DEFAULT_AGES_DAYS: tuple[float, ...] = (1.0, 7.0)
#: How long past the last age a missed refresh is still caught up.
CATCH_UP = dt.timedelta(days=3)
ENV_SWITCH = "TRUSTWATCH_METRICS_REFRESH"


class RefreshError(ValueError):
    """The refresh settings are unusable; the message says which and how to fix it."""


@dataclass(frozen=True)
class RefreshSettings:
    """Whether and when to refresh, and the monthly read budget it must stay under (None: no budget)."""

    enabled: bool = True
    ages_days: tuple[float, ...] = DEFAULT_AGES_DAYS
    monthly_read_budget: int | None = None
    batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        if not self.ages_days or any(a <= 0 for a in self.ages_days):
            raise RefreshError(f"refresh_ages_days must be positive numbers of days, got {list(self.ages_days)}")
        if not 1 <= self.batch <= MAX_BATCH:
            raise RefreshError(f"batch must be between 1 and {MAX_BATCH} (X's lookup limit), got {self.batch}")
        if self.monthly_read_budget is not None and self.monthly_read_budget < 0:
            raise RefreshError(f"monthly_read_budget must not be negative, got {self.monthly_read_budget}")

    @property
    def ages(self) -> list[dt.timedelta]:
        """The ages, shortest first."""
        return sorted(dt.timedelta(days=a) for a in set(self.ages_days))

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> RefreshSettings:
        """From the ``x_api`` connection extra: ``metrics_refresh`` (bool), ``refresh_ages_days`` (list of
        days), ``monthly_read_budget`` (reads per calendar month); ``TRUSTWATCH_METRICS_REFRESH=off`` wins."""
        extra = extra or {}
        enabled = extra.get("metrics_refresh", True)
        if isinstance(enabled, str):
            enabled = enabled.strip().lower() not in {"0", "false", "off", "no"}
        if os.environ.get(ENV_SWITCH, "").strip().lower() in {"0", "false", "off", "no"}:
            enabled = False
        raw_ages = extra.get("refresh_ages_days", list(DEFAULT_AGES_DAYS))
        try:
            ages = tuple(float(a) for a in (raw_ages if isinstance(raw_ages, list | tuple) else [raw_ages]))
        except (TypeError, ValueError):
            raise RefreshError(f"x_api extra refresh_ages_days must be a list of days, got {raw_ages!r}") from None
        budget = extra.get("monthly_read_budget")
        try:
            budget = int(budget) if budget not in (None, "") else None
        except (TypeError, ValueError):
            raise RefreshError(f"x_api extra monthly_read_budget must be a whole number, got {budget!r}") from None
        return cls(enabled=bool(enabled), ages_days=ages, monthly_read_budget=budget)


def due_posts(engine: Engine, settings: RefreshSettings, now: dt.datetime) -> list[tuple[int, str, float]]:
    """(row id, X id, age in days it is due for) of the live X posts that passed an age without a snapshot
    since then, oldest first."""
    ages = settings.ages
    p, s = Post.__table__, MetricSnapshot.__table__
    newest = func.max(s.c.observed_at).label("newest")
    query = (
        select(p.c.id, p.c.platform_post_id, p.c.created_at, newest)
        .select_from(p.outerjoin(s, s.c.post_id == p.c.id))
        .where(p.c.platform == "x", p.c.deleted_at.is_(None), p.c.kind != "repost",
               p.c.created_at <= now - ages[0], p.c.created_at > now - ages[-1] - CATCH_UP)
        .group_by(p.c.id, p.c.platform_post_id, p.c.created_at)
        .order_by(p.c.created_at, p.c.id)
    )
    due: list[tuple[int, str, float]] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            age = max(a for a in ages if row.created_at + a <= now)
            if row.newest is None or row.newest < row.created_at + age:
                due.append((row.id, row.platform_post_id, age.total_seconds() / 86400))
    return due


def reads_this_month(engine: Engine, now: dt.datetime) -> int:
    """X reads the ledger records since the start of ``now``'s calendar month (UTC): ``posts_seen`` of every
    X row that read posts (collections, lookups, refreshes; batch compliance jobs record 0)."""
    month = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    t = CollectionRun.__table__
    with engine.connect() as conn:
        spent = conn.execute(
            select(func.coalesce(func.sum(t.c.posts_seen), 0))
            .where(t.c.platform == "x", t.c.started_at >= month, t.c.status != "dry_run")
        ).scalar_one()
    return int(spent)


def refresh_metrics(
    engine: Engine,
    collector: Any,
    settings: RefreshSettings | None = None,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    run_context: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Look the due X posts up again (or, in a dry run, say what it would cost) and record it in the ledger.

    Returns ``{"due", "billed_reads", "refreshed", "skipped_over_budget", "month_reads_before", "budget",
    "run_id", "status"}``; ``status`` is ``off`` (and nothing is read or written) when the switch is off.
    """
    settings = settings or RefreshSettings()
    moment = (now or store.utcnow()).astimezone(dt.UTC)
    if not settings.enabled:
        log.info("metrics refresh is switched off (x_api extra metrics_refresh / %s)", ENV_SWITCH)
        return {"status": "off", "due": 0, "billed_reads": 0, "refreshed": 0, "skipped_over_budget": 0}
    due = due_posts(engine, settings, moment)
    spent = reads_this_month(engine, moment)
    budget = settings.monthly_read_budget
    allowed = len(due) if budget is None else max(0, min(len(due), budget - spent))
    ages_text = ", ".join(f"{a:g}" for a in sorted(set(settings.ages_days)))
    summary: dict[str, Any] = {
        "due": len(due), "billed_reads": 0, "refreshed": 0, "skipped_over_budget": len(due) - allowed,
        "month_reads_before": spent, "budget": budget, "ages_days": sorted(set(settings.ages_days)),
        "due_by_age": _by_age(due),
    }
    handle = store.open_run(
        engine, platform="x", query_key=QUERY_KEY, query_version=QUERY_VERSION,
        query_text=f"refresh public metrics of X posts at ages {ages_text} days (GET /2/tweets, no expansions)",
        window_start=None, window_end=moment, source=SOURCE, run_context=run_context,
    )
    summary["run_id"] = handle.run_id
    if dry_run:
        summary.update(status="dry_run", billed_reads_expected=allowed)
        store.update_run(engine, handle.run_id, status="dry_run", finished_at=store.utcnow(), expected_posts=allowed,
                         coverage_gap=summary["skipped_over_budget"] > 0, notes=_notes(summary))
        log.info("metrics refresh (dry run): %d posts due, %d billed reads within the budget, %d over it",
                 len(due), allowed, summary["skipped_over_budget"])
        return summary
    requests = waits = 0
    try:
        todo = due[:allowed]
        for start in range(0, len(todo), settings.batch):
            ids = [post_id for _, post_id, _ in todo[start:start + settings.batch]]
            page, stats = _lookup(collector, ids)
            requests += stats.requests
            waits += stats.rate_limit_waits
            result = store.write_page(engine, page, run_id=handle.run_id)
            summary["billed_reads"] += len(page.posts)
            # asked, not returned (deleted, protected...): not billed, due again until compliance tombstones it
            summary["unavailable"] = summary.get("unavailable", 0) + len(set(ids) - {p.platform_post_id
                                                                                  for p in page.posts})
            summary["refreshed"] += result.updated + result.new
            store.update_run(engine, handle.run_id, pages=start // settings.batch + 1, requests=requests,
                             posts_seen=summary["billed_reads"], posts_updated=summary["refreshed"],
                             rate_limit_waits=waits, rate_limit_wait_seconds=stats.rate_limit_wait_seconds)
    except BaseException as exc:
        summary["status"] = "failed"
        store.update_run(engine, handle.run_id, status="failed", finished_at=store.utcnow(),
                         error=_redacted(exc, secrets), notes=_notes(summary))
        raise
    summary["status"] = "success"
    store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow(),
                     coverage_gap=summary["skipped_over_budget"] > 0, notes=_notes(summary))
    log.info("metrics refresh: %d posts due, %d refreshed, %d billed reads, %d left for the monthly budget",
             len(due), summary["refreshed"], summary["billed_reads"], summary["skipped_over_budget"])
    return summary


def _lookup(collector: Any, ids: Sequence[str]) -> tuple[Any, Any]:
    """GET /2/tweets with the post fields and no expansions (users returned would be billed too), through
    the collector's retry and rate-limit policy."""
    from trustwatch.collectors.x import _Stats

    stats = _Stats()
    body = collector._request(
        lambda: collector.client.get_tweets(list(ids), tweet_fields=TWEET_FIELDS),
        "tweets lookup (metrics refresh)", None, stats,
    )
    page = normalize_x_page(body, source="tweets (metrics refresh)")
    page.requests = stats.requests
    return page, stats


def _by_age(due: list[tuple[int, str, float]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, _, age in due:
        out[f"{age:g}d"] = out.get(f"{age:g}d", 0) + 1
    return out


def _notes(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("due", "due_by_age", "billed_reads", "refreshed", "unavailable", "skipped_over_budget",
            "month_reads_before", "budget", "ages_days", "billed_reads_expected")
    return {k: summary[k] for k in keys if k in summary}


def _redacted(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:2000]
