"""Trends and the report carry the agency's ORI, state and type: "county sheriffs in Texas" (issue 16)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from trustwatch.analysis import trends
from trustwatch.analysis.report import write_report
from trustwatch.collectors.agencies import Registry
from trustwatch.models.store import sync_agencies, write_page

from trustwatch.records import AuthorRecord, MentionRecord, Page, PostRecord

TX_SHERIFFS = ("harris-county-sheriff", "tx-anderson-county-sheriffs-office")
OTHERS = ("ok-adair-county-sheriffs-office", "tx-palestine-police-department")


@pytest.fixture
def rolled_up(store: Engine, registry: Registry) -> Engine:
    """Two Texas sheriffs, an Oklahoma sheriff and a Texas city police, each named in a few posts."""
    entries = [registry.by_slug(s) for s in (*TX_SHERIFFS, *OTHERS)]
    sync_agencies(store, entries)
    page = Page()
    for n, entry in enumerate(entries):
        for k in range(3):
            pid = str(1_800_000_000_000_000_000 + 10 * n + k)
            body = f"Thanks to the {entry.name} for the quick help today"
            start = body.index(entry.name)
            page.posts.append(PostRecord("x", pid, "post", dt.datetime(2026, 11, 20, 15, k, tzinfo=dt.UTC),
                                         text=body, author_platform_id=f"u{n}{k}"))
            page.authors.append(AuthorRecord("x", f"u{n}{k}", username=f"user{n}{k}"))
            page.mentions.append(MentionRecord("x", pid, entry.slug, entry.name, "name", start,
                                               start + len(entry.name)))
    write_page(store, page)
    trends.enrich(store, margin=dt.timedelta(0))
    return store


def test_the_daily_trend_filters_to_county_sheriffs_in_texas(rolled_up: Engine, registry: Registry) -> None:
    with rolled_up.connect() as conn:
        rows = conn.execute(text(
            "SELECT agency, ori, state, agency_kind, agency_type, sum(mentions) FROM agency_daily_trend "
            "WHERE state = 'TX' AND agency_kind = 'sheriff' GROUP BY agency, ori, state, agency_kind, agency_type "
            "ORDER BY agency")).all()
    assert [tuple(r) for r in rows] == [
        (slug, registry.by_slug(slug).ori, "TX", "sheriff", "County", 3) for slug in sorted(TX_SHERIFFS)]
    assert all(registry.by_slug(slug).ori for slug in TX_SHERIFFS)


def test_the_report_shows_ori_state_and_type_and_filters_by_them(rolled_up: Engine, registry: Registry,
                                                                tmp_path: Path) -> None:
    everyone = write_report(rolled_up, tmp_path / "all.html").read_text(encoding="utf-8")
    for slug in (*TX_SHERIFFS, *OTHERS):
        assert f"agency-{slug}" in everyone and registry.by_slug(slug).ori in everyone
    summary = everyone[everyone.index('<section id="summary">'):]
    header = re.findall(r"<th>([^<]*)</th>", summary[:summary.index("</tr>")])
    assert header[-5:] == ["alerts", "ORI", "state", "kind", "FBI type"]
    sheriffs = write_report(rolled_up, tmp_path / "tx.html", states=["tx"], kinds=["sheriff"]).read_text(
        encoding="utf-8")
    assert {slug for slug in (*TX_SHERIFFS, *OTHERS) if f'id="agency-{slug}"' in sheriffs} == set(TX_SHERIFFS)
    harris = registry.by_slug("harris-county-sheriff")
    assert f"ORI {harris.ori} · state TX ·\nsheriff · FBI type County" in sheriffs
