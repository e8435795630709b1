"""Synthetic normalized records for store tests and benchmarks."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from trustwatch.records import AuthorRecord, MentionRecord, Metrics, Page, PostRecord

BASE_TIME = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WORDS = ("police", "officer", "community", "report", "downtown", "traffic", "station", "patrol", "thanks",
         "arrest", "video", "meeting", "response", "safety", "neighborhood", "chief", "body", "camera")


@dataclass(frozen=True)
class FakeAgency:
    slug: str
    name: str
    kind: str = "municipal"
    jurisdiction: str | None = "Testville"
    state: str | None = "NY"
    aliases: tuple[str, ...] = ()
    x_handles: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    subreddits: tuple[str, ...] = ()
    active: bool = True
    source_file: str = field(default="test")
    #: The agency's IANA zone: its rollup days are its local days (None: UTC days).
    timezone: str | None = None


AGENCIES = [FakeAgency("alpha-pd", "Alpha Police Department", aliases=("APD-X",)),
            FakeAgency("beta-so", "Beta Sheriff's Office", kind="sheriff", timezone="Pacific/Guam"),
            FakeAgency("gamma-sp", "Gamma State Police", kind="state", timezone="America/Los_Angeles")]


def make_page(ids: range | list[int], *, platform: str = "x", seed: int = 1, text_len: int = 180,
              mentions_per_post: int = 2, cursor: str | None = None) -> Page:
    """A page of posts with authors, two mentions each, realistic text lengths."""
    rng = random.Random(seed)
    page = Page(cursor=cursor)
    for i in ids:
        uid = f"u{i % 97}"
        page.authors.append(AuthorRecord(platform, uid, username=f"user{i % 97}", display_name=f"User {i % 97}",
                                         followers_count=i % 1000))
        words = []
        while sum(len(w) + 1 for w in words) < text_len:
            words.append(rng.choice(WORDS))
        page.posts.append(
            PostRecord(
                platform=platform,
                platform_post_id=str(1_800_000_000_000_000_000 + i),
                kind="post",
                created_at=BASE_TIME + dt.timedelta(seconds=i),
                text=" ".join(words),
                author_platform_id=uid,
                lang="en",
                metrics=Metrics(likes=i % 13, reposts=i % 5, replies=i % 3, quotes=0),
                raw={"id": str(i), "text": "raw"},
            )
        )
        for a in AGENCIES[:mentions_per_post]:
            page.mentions.append(MentionRecord(platform, str(1_800_000_000_000_000_000 + i), a.slug, a.name, "name"))
    return page
