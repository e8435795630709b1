"""A listing-first Reddit plan that scales to thousands of agencies within 100 requests per minute.

Reddit allows 100 requests per minute per OAuth client (averaged over ten minutes).  A search per agency
grows with the registry; a listing does not: the ``new`` listing and the ``comments`` listing of a
subreddit show everything posted there, whoever it is about, and the matcher attributes it locally
against the whole registry.  So the plan reads the ``new`` and ``comments`` listings of a bounded set
of subreddits (the global ones and the agencies' own city and state subreddits), combined ``r/a+b+c``
up to :data:`GROUP_SIZE` per request: the cost grows with the number of subreddit groups, not of
agencies, and agencies that share a state subreddit cost nothing more.  It is the default plan; it
searches only for what listings cannot reach (a group's listing cut by Reddit is read member by member,
and a member still cut is searched for the agencies: ``RedditCollector.pages``).  The per-agency search
plan (``plan_queries``) stays an option.

:func:`estimate` says what a plan needs per hour (listings, comment trees of attributed threads,
revisits) against the budget; :func:`check_budget` refuses a plan that cannot fit and names what to
drop: the subreddits that serve the fewest agencies first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trustwatch.collectors.agencies import DEFAULT_GLOBAL_SUBREDDITS
from trustwatch.collectors.reddit import RedditQuery, agency_subreddits

#: Reddit's documented limit for an OAuth client.
REQUESTS_PER_MINUTE = 100
#: Share of the budget a plan may use: the rest absorbs retries, probes and manual runs.
HEADROOM = 0.8
#: Subreddits per combined listing (``r/a+b+...``); a longer URL risks Reddit's limits, a busier
#: combination reaches the ~1,000 item cap within a window sooner.
GROUP_SIZE = 25
#: Default revisit settings (see ``reddit_revisit``): four ages, up to 10 requests each, 2 on average.
REVISIT_AGES = 4
REVISIT_REQUESTS = 2.0


def threads_per_hour(engine: Any, days: int = 7) -> float:
    """Attributed Reddit submissions stored per hour over the last ``days`` (what the comment trees and
    revisits of a plan cost); 0 for an empty or unreachable store."""
    import datetime as dt

    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError
    from trustwatch.models.tables import Post, PostMention

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    # Core columns, not ORM attributes: an ORM statement configures every mapper of the process first, and
    # in an Airflow task that means importing and configuring all of Airflow's models (a quarter second per
    # task that asks for a plan).
    posts, mentions = Post.__table__.c, PostMention.__table__.c
    try:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count(func.distinct(posts.id)))
                .select_from(Post.__table__.join(PostMention.__table__, mentions.post_id == posts.id))
                .where(posts.platform == "reddit", posts.kind == "submission", posts.created_at >= since)
            ).scalar_one()
    except SQLAlchemyError:
        return 0.0
    return count / (days * 24)


class PlanError(ValueError):
    """A plan that does not fit the rate limit; the message says what to drop."""


@dataclass
class PlanEstimate:
    """Requests per hour a plan needs, by part, against the budget."""

    listings: int
    subreddits: int
    agencies: int
    listing_requests: float
    thread_requests: float
    revisit_requests: float
    budget: float
    requests_per_minute: int = REQUESTS_PER_MINUTE
    drop: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Requests per hour the plan needs."""
        return self.listing_requests + self.thread_requests + self.revisit_requests

    @property
    def fits(self) -> bool:
        """True when the plan stays within the budget (with headroom)."""
        return self.total <= self.budget

    def as_dict(self) -> dict[str, Any]:
        """For the ledger notes and the dry run."""
        return {**asdict(self), "total": round(self.total, 1), "fits": self.fits}

    def describe(self) -> str:
        """One line for the dry run and the logs."""
        return (
            f"Reddit plan: {self.listings} listings over {self.subreddits} subreddits for {self.agencies} agencies "
            f"needs about {self.total:.0f} requests/hour ({self.listing_requests:.0f} listings, "
            f"{self.thread_requests:.0f} comment trees, {self.revisit_requests:.0f} revisits) of a budget of "
            f"{self.budget:.0f} ({self.requests_per_minute}/minute less {round((1 - HEADROOM) * 100)}% headroom)"
        )


def _clean(name: str) -> str:
    return str(name).strip().removeprefix("/").removeprefix("r/").strip("/")


def plan_subreddits(
    registry: Any, global_subreddits: Sequence[str] = DEFAULT_GLOBAL_SUBREDDITS, agencies: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """The subreddits the plan reads (name as written -> slugs of the agencies it serves; global ones
    serve every agency), globals first, then the agencies' own by name."""
    wanted = set(agencies) if agencies is not None else None
    owners = agency_subreddits(registry)
    spelled: dict[str, str] = {}
    for entry in getattr(registry, "entries", registry) or ():
        for sub in getattr(entry, "subreddits", None) or ():
            spelled.setdefault(_clean(sub).lower(), _clean(sub))
    out: dict[str, list[str]] = {}
    for sub in global_subreddits:
        out.setdefault(_clean(sub), ["*"])
    seen = {s.lower() for s in out}
    for low in sorted(owners):
        slugs = owners[low] if wanted is None else [s for s in owners[low] if s in wanted]
        if slugs and low not in seen:
            seen.add(low)
            out[spelled.get(low, low)] = slugs
    return out


def listing_first_queries(
    registry: Any,
    global_subreddits: Sequence[str] = DEFAULT_GLOBAL_SUBREDDITS,
    agencies: Iterable[str] | None = None,
    group_size: int = GROUP_SIZE,
) -> list[RedditQuery]:
    """The listing-first plan: a ``new`` and a ``comments`` listing per group of subreddits.

    Each listing is its own ledger row and watermark (key from the group's members, so a registry
    change that moves a subreddit to another group starts new rows).  ``agency_slugs`` is empty (every
    agency the matcher knows) unless ``agencies`` narrows the run.
    """
    slugs = tuple(sorted(set(agencies))) if agencies is not None else ()
    subs = list(plan_subreddits(registry, global_subreddits, agencies))
    queries: list[RedditQuery] = []
    for start in range(0, len(subs), max(1, group_size)):
        group = tuple(subs[start : start + group_size])
        digest = hashlib.sha256("+".join(s.lower() for s in group).encode()).hexdigest()[:16]
        for kind in ("new", "comments"):
            version = hashlib.sha256(f"{kind}:{digest}:{','.join(slugs)}".encode()).hexdigest()[:16]
            key = f"reddit-{kind}-{group[0].lower()}-{len(group)}-{digest[:8]}"[:100]
            queries.append(RedditQuery(key, f"r/{'+'.join(group)}/{kind}", group, version, slugs, kind))
    return queries


def estimate(
    queries: Sequence[Any],
    *,
    agencies: int,
    threads_per_hour: float = 0.0,
    requests_per_thread: float = 1.0,
    pages_per_listing: float = 1.0,
    revisit_ages: int = REVISIT_AGES,
    revisit_requests: float = REVISIT_REQUESTS,
    requests_per_minute: int = REQUESTS_PER_MINUTE,
) -> PlanEstimate:
    """Requests per hourly window: a page per listing (more when a group posts over 100 items an hour:
    ``pages_per_listing``), a comment tree per attributed thread (``threads_per_hour``, e.g. from the
    ledger), and its revisits later.  A search costs at least a page like a listing."""
    subreddits = {s.lower() for q in queries for s in q.subreddits}
    listing = sum(pages_per_listing for _ in queries)
    return PlanEstimate(
        listings=len(queries),
        subreddits=len(subreddits),
        agencies=agencies,
        listing_requests=listing,
        thread_requests=threads_per_hour * requests_per_thread,
        revisit_requests=threads_per_hour * revisit_ages * revisit_requests,
        budget=requests_per_minute * 60 * HEADROOM,
        requests_per_minute=requests_per_minute,
    )


def check_budget(
    plan: PlanEstimate, registry: Any, queries: Sequence[Any], group_size: int = GROUP_SIZE
) -> PlanEstimate:
    """Return the estimate when it fits; else raise :class:`PlanError` naming the subreddits to drop
    (those serving the fewest agencies first) to fit, or saying that the threads alone do not fit."""
    if plan.fits:
        return plan
    per_group = 2 * max(1.0, plan.listing_requests / max(1, plan.listings))  # new + comments listings
    fixed = plan.thread_requests + plan.revisit_requests
    if fixed > plan.budget:
        raise PlanError(
            f"{plan.describe()}: the comment trees and revisits alone exceed the budget; lower the revisit "
            "ages or budget (reddit_api extra revisit_ages / revisit_budget) or track fewer agencies"
        )
    if any(getattr(q, "kind", "") == "search" for q in queries):
        raise PlanError(
            f"{plan.describe()}: does not fit; use the listing-first plan (the default: drop the reddit_api "
            "extra plan = 'search'), whose cost does not grow with the number of agencies"
        )
    groups_allowed = max(0, math.floor((plan.budget - fixed) / per_group))
    owners = agency_subreddits(registry)
    subs = [s for q in queries if q.kind == "new" for s in q.subreddits]
    keep = groups_allowed * group_size
    # global subreddits (no owner) serve every agency: dropped last
    ranked = sorted(subs, key=lambda s: (len(owners[s.lower()]) if s.lower() in owners else 10**6, s.lower()))
    drop = ranked[: max(0, len(subs) - keep)]
    plan.drop = [f"r/{s}" for s in drop]
    shown = ", ".join(plan.drop[:10]) + (f" and {len(plan.drop) - 10} more" if len(plan.drop) > 10 else "")
    raise PlanError(f"{plan.describe()}: does not fit; drop {len(drop)} subreddits ({shown}) or raise the budget")
