"""The demo corpus shows what the product is for: a weekly rhythm, an incident spike, a slow recovery.

Checked the way an analyst would see it: posts per weekday, an agency's daily mentions against its
median, and the mean trust score (the real scorer) of an agency's posts right after its scandal against
the last weeks.
"""

from __future__ import annotations

import collections
import datetime as dt
import statistics

import pytest
from trustwatch.analysis.scoring import Scorer
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.x_corpus import DEMO_EVENTS, XCorpus

END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def demo() -> XCorpus:
    return XCorpus(CorpusConfig(seed=7, posts=12000, days=70, end=END, events=True))


def test_demo_spans_seventy_days(demo: XCorpus) -> None:
    times = [t.created_at for t in demo.tweets.values()]
    assert min(times) < END - dt.timedelta(days=69) and max(times) >= END - dt.timedelta(days=1)


def test_weekends_are_quieter_than_weekdays(demo: XCorpus) -> None:
    per_day = collections.Counter(t.created_at.date() for t in demo.tweets.values())
    weekday = statistics.mean(n for d, n in per_day.items() if d.weekday() < 5)
    weekend = statistics.mean(n for d, n in per_day.items() if d.weekday() >= 5)
    assert weekend < 0.75 * weekday


def test_one_agency_spikes_after_its_incident(demo: XCorpus) -> None:
    slug, first_day, _length = DEMO_EVENTS["spike"]
    per_day = collections.Counter(t.created_at.date() for t in demo.tweets.values() if slug in t.agencies)
    days = [(END - dt.timedelta(days=k)).date() for k in range(1, 70)]
    counts = [per_day.get(d, 0) for d in days]
    peak_day = days[counts.index(max(counts))]
    assert max(counts) >= 8 * max(1, statistics.median(counts))
    assert (END.date() - peak_day).days in (first_day - 1, first_day)


def test_another_agency_recovers_slowly(demo: XCorpus) -> None:
    slug, scandal_day, length = DEMO_EVENTS["recovery"]
    scorer = Scorer()

    def mean_trust(newest: int, oldest: int) -> float:
        texts = [t.text for t in demo.tweets.values() if slug in t.agencies and t.kind != "repost"
                 and END - dt.timedelta(days=oldest) <= t.created_at < END - dt.timedelta(days=newest)]
        assert len(texts) >= 10, (newest, oldest, len(texts))
        return statistics.mean(scorer.score_text(x).trust for x in texts)

    after_scandal = mean_trust(scandal_day - 10, scandal_day)
    middle = mean_trust(scandal_day - 25, scandal_day - 10)
    late = mean_trust(scandal_day - length, scandal_day - 25)
    assert after_scandal < middle < late and after_scandal < -0.2 and late > 0

