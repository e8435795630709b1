"""The trend report renders for the sandbox corpus: its sections, charts and numbers, self-contained."""

from __future__ import annotations

import base64
import datetime as dt
import struct
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from trustwatch.analysis import trends
from trustwatch.analysis.report import ReportError, write_report
from trustwatch.collectors.reddit import normalize_reddit_thing
from trustwatch.collectors.runner import add_mentions
from trustwatch.collectors.x import normalize_x_page
from trustwatch.models.store import sync_agencies, write_page
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.reddit_corpus import RedditCorpus
from trustwatch.sandbox.x_corpus import XCorpus

from tests.store_helpers import AGENCIES
from tests.test_language import store_five_posts
from tests.test_trends import BASELINE, make_post, write
from trustwatch.records import AuthorRecord, MentionRecord, Page

CORPUS = CorpusConfig(seed=11, posts=2400, days=28, end=dt.datetime(2026, 11, 20, tzinfo=dt.UTC))
TWEET_FIELDS = {"created_at", "author_id", "conversation_id", "lang", "public_metrics", "referenced_tweets",
                "in_reply_to_user_id", "entities", "note_tweet", "withheld"}
USER_FIELDS = {"created_at", "public_metrics", "verified", "location"}


def load_sandbox_corpus(engine: Engine, registry, matcher) -> None:
    """The sandbox's X and Reddit corpora through the real normalizers, matcher and write path."""
    sync_agencies(engine, registry.entries)
    x = XCorpus(CORPUS, registry.entries)
    live = [t for t in x.searchable()]
    for i in range(0, len(live), 500):
        chunk = live[i:i + 500]
        users = {t.author_id: x.users[t.author_id].to_api(USER_FIELDS) for t in chunk}
        page = normalize_x_page({"data": [t.to_api(TWEET_FIELDS, x.users_by_name) for t in chunk],
                                 "includes": {"users": list(users.values())}})
        add_mentions(page, matcher)
        write_page(engine, page)
    reddit = RedditCorpus(CORPUS, registry.entries)
    page = Page()
    for sub in reddit.submissions.values():
        submission = normalize_reddit_thing({"kind": "t3", "data": sub.to_data()})
        page.posts.append(submission)
        slugs = sorted({m.agency_slug for m in matcher.match(f"{submission.title}\n{submission.text}",
                                                             community=submission.community)})
        for comment_id in sub.all_comments:
            comment = normalize_reddit_thing({"kind": "t1", "data": reddit.comments[comment_id].to_data()})
            page.posts.append(comment)
            page.mentions.extend(MentionRecord("reddit", comment.platform_post_id, slug, f"t3_{sub.id}", "thread")
                                 for slug in slugs)
    page.authors = [AuthorRecord("reddit", a, username=a) for a in {p.author_platform_id for p in page.posts}
                    if a and a != "[deleted]"]
    add_mentions(page, matcher)
    write_page(engine, page)


class ReportParser(HTMLParser):
    """Collects what a reader of the report sees: section ids, headings, images, links, table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self.summary_rows: list[list[str]] = []
        self._in_summary = False
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
            self._in_summary = attrs.get("id") == "summary"
        if tag == "img":
            self.images.append(attrs)
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if tag in ("img", "script", "link") and value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag == "tr" and self._in_summary:
            self._row = []
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._in_summary and self._row:
            self.summary_rows.append(self._row)
        if tag == "section":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def png_size(data_uri: str) -> tuple[int, int]:
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


@pytest.fixture(scope="module")
def sandbox_store(tmp_path_factory: pytest.TempPathFactory, registry, matcher) -> Engine:
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('report') / 'store.db'}")
    migrate.upgrade(engine)
    load_sandbox_corpus(engine, registry, matcher)
    trends.enrich(engine)
    yield engine
    engine.dispose()


def test_report_renders_for_the_sandbox_corpus(sandbox_store: Engine, tmp_path: Path) -> None:
    out = write_report(sandbox_store, tmp_path / "reports" / "trend.html", max_agencies=4)
    doc = out.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(doc)
    agencies = [s for s in parser.sections if s.startswith("agency-")]
    assert parser.sections[0] == "summary" and parser.sections[-1] == "method"
    assert len(agencies) == 4
    assert parser.external == [] and "script" not in parser.tags  # self-contained
    charts = [img for img in parser.images if "chart" in img.get("class", "")]
    assert len(charts) == 4
    for img in charts:
        assert img["src"].startswith("data:image/png;base64,")
        assert png_size(img["src"]) == (720, 496)  # 9 x 6.2 inches at 80 dpi
    for heading in ("Weekly trend", "Alerts", "Sample posts", "Most trusting", "Most distrusting"):
        assert doc.count(f">{heading}<") == 4

    # The summary's counts are what an analyst counts in the raw tables: public mentions (no reposts, no
    # agency accounts' own posts), tombstones left out.
    with sandbox_store.connect() as conn:
        raw = dict(conn.execute(text(
            "SELECT agency, count(*) FROM agency_mentions WHERE public_mention = 1 GROUP BY agency")).all())
        # Names repeat across the nationwide registry ("Buffalo Police Department" in New York and Missouri):
        # a name shown among the top agencies is the one of its namesakes with the most posts.
        names = {name: slug for name, slug, _ in conn.execute(text(
            "SELECT a.name, a.slug, count(DISTINCT m.post_id) AS n FROM agencies a "
            "JOIN post_mentions m ON m.agency_id = a.id GROUP BY a.name, a.slug ORDER BY n")).all()}
    shown = {names[row[0]]: int(row[1]) for row in parser.summary_rows}
    assert shown == {slug: raw[slug] for slug in shown}
    assert sorted(raw.values(), reverse=True)[:4] == sorted(shown.values(), reverse=True)


def test_report_filters_by_agency_and_date(sandbox_store: Engine, tmp_path: Path) -> None:
    since = CORPUS.stop.date() - dt.timedelta(days=7)
    out = write_report(sandbox_store, tmp_path / "nypd.html", agencies=["nypd", "lapd"], since=since)
    parser = ReportParser()
    parser.feed(out.read_text(encoding="utf-8"))
    assert [s for s in parser.sections if s.startswith("agency-")] == ["agency-nypd", "agency-lapd"]
    # Weeks are the agency's own (New York) weeks: they start at Monday midnight Eastern time.
    monday = trends.week_start(since)
    start = dt.datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo("America/New_York"))
    with sandbox_store.connect() as conn:
        recent = conn.execute(text(
            "SELECT count(*) FROM agency_mentions WHERE agency = 'nypd' AND public_mention = 1 "
            "AND created_at >= :since"),
            {"since": start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).scalar_one()
    assert int(parser.summary_rows[0][1]) == recent
    with pytest.raises(ReportError, match="nypd-typo"):
        write_report(sandbox_store, tmp_path / "x.html", agencies=["nypd-typo"])


def test_report_shows_a_spike_alert_with_its_top_posts(sqlite_engine: Engine, tmp_path: Path) -> None:
    sync_agencies(sqlite_engine, AGENCIES)
    items, i = [], 0
    for day, n in enumerate([*BASELINE, 30]):
        for k in range(n):
            items.append(make_post(i, day=day, agencies={"alpha-pd": "name"}, mood="bad" if day == 32 else "flat",
                                   likes=900 if (day == 32 and k == 0) else 0))
            i += 1
    write(sqlite_engine, items)
    trends.enrich(sqlite_engine)
    doc = write_report(sqlite_engine, tmp_path / "spike.html").read_text(encoding="utf-8")
    section = doc[doc.index('id="agency-alpha-pd"'):]
    alerts = section[section.index(">Alerts<"):section.index(">Sample posts<")]
    assert "2026-11-06" in alerts and "engagement 900" in alerts
    assert "covered up the beating" in alerts


def test_report_says_how_many_posts_were_left_unscored_for_language(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from trustwatch import cli, tasks

    store_five_posts(sqlite_engine)  # two English posts; one German, one Spanish and one Japanese
    trends.enrich(sqlite_engine, workers=1)
    doc = write_report(sqlite_engine, tmp_path / "lang.html").read_text(encoding="utf-8")
    said = doc[doc.index('id="unscored-language">'):]
    said = said[said.index(">") + 1:said.index("</p>")]
    assert said.startswith("3 posts were left unscored because they are not in English (de 1, es 1, ja 1)")
    parser = ReportParser()
    parser.feed(doc)
    row = parser.summary_rows[0]  # agency, mentions, mean sentiment, mean trust, not in English, alerts
    assert (row[1], row[4]) == ("5", "3")
    weekly = doc[doc.index('<table class="weekly">'):]
    header = [h.strip() for h in weekly[:weekly.index("</tr>")].replace("</th>", "").split("<th>")[1:]]
    cells = weekly[weekly.index("</tr>") + 5:weekly.index("</table>")]
    cells = [c.split("</td>")[0] for c in cells.split("<td>")[1:]]
    assert (cells[header.index("mentions")], cells[header.index("scored")],
            cells[header.index("not in English")]) == ("5", "2", "3")

    monkeypatch.setattr(tasks, "engine", lambda: sqlite_engine)
    assert cli.main(["report", "--out", str(tmp_path / "cli.html")]) == 0
    assert "3 posts were left unscored because they are not in English" in capsys.readouterr().out
    assert cli.main(["report", "--out", str(tmp_path / "later.html"), "--since", "2026-10-07"]) == 0
    assert "No post was left unscored for its language." in capsys.readouterr().out
