"""The trend report: one self-contained HTML file an analyst can open, mail or archive.

Per agency: weekly mentions by platform, weekly mean sentiment and trust with a +/- one standard
deviation band (the spread), the spike alerts of the period, and sample posts (most trusting, most
distrusting, most engaged).  Charts are drawn with matplotlib's Agg backend and embedded as PNG data
URIs, so the file needs no network, server or companion files.  Everything is read from the analyst
views and rollups, so the report shows exactly what an analyst querying the store would see.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Engine, bindparam, text
from sqlalchemy.engine import Connection
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION
from trustwatch.analysis.trends import week_start
from trustwatch.models.types import UTCDateTime

#: Agencies shown when none are asked for: the most mentioned ones in the period.
DEFAULT_MAX_AGENCIES = 20
SAMPLE_POSTS = 3
PLATFORM_COLORS = {"x": "#1d3557", "reddit": "#e76f51"}


class ReportError(ValueError):
    """The report cannot be written as asked (unknown agency, nothing in the store)."""


@dataclass
class WeekStats:
    """One agency-week, all platforms and scopes pooled."""

    week: dt.date
    mentions_by_platform: dict[str, int] = field(default_factory=dict)
    direct: int = 0
    thread: int = 0
    #: Amplification and agency speech, counted apart from the public mentions above (issue 14).
    reposts: int = 0
    agency_posts: int = 0
    scored: int = 0
    #: Posts left unscored because they are not in English (in ``mentions``, not in ``scored``; issue 19).
    unscored_language: int = 0
    sentiment_sum: float = 0.0
    sentiment_sq_sum: float = 0.0
    trust_sum: float = 0.0
    trust_sq_sum: float = 0.0

    @property
    def mentions(self) -> int:
        """Public posts mentioning the agency that week (no reposts, no agency accounts' own posts)."""
        return sum(self.mentions_by_platform.values())

    def mean(self, what: str) -> float | None:
        """Mean sentiment or trust of the scored posts."""
        return getattr(self, f"{what}_sum") / self.scored if self.scored else None

    def stddev(self, what: str) -> float | None:
        """Sample standard deviation of sentiment or trust (pooled from the rollup sums)."""
        if self.scored < 2:
            return None
        total, squares = getattr(self, f"{what}_sum"), getattr(self, f"{what}_sq_sum")
        return math.sqrt(max(0.0, (squares - total * total / self.scored) / (self.scored - 1)))


@dataclass
class AgencySection:
    """Everything the report shows for one agency."""

    slug: str
    name: str
    weeks: list[WeekStats]
    alerts: list[dict[str, Any]]
    samples: dict[str, list[dict[str, Any]]]
    #: The agency's FBI ORI, state, kind and FBI type (issue 16): what analysts filter and join on.
    meta: dict[str, Any] = field(default_factory=dict)


def _pick_version(conn: Connection, wanted: str | None) -> str:
    if wanted:
        return wanted
    versions = [r.scorer_version for r in conn.execute(text(
        "SELECT scorer_version, max(updated_at) AS latest FROM agency_daily_trends GROUP BY scorer_version "
        "ORDER BY latest DESC"))]
    if not versions:
        raise ReportError("the store has no trend rollups yet: run `trustwatch enrich` (or the enrich_posts DAG)")
    return SCORER_VERSION if SCORER_VERSION in versions else versions[0]


#: Agency metadata the report shows beside each name (issue 16).
_META_COLUMNS = ("ori", "state", "kind", "agency_type")


def _agency_meta(conn: Connection, slugs: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not slugs:
        return {}
    rows = conn.execute(text("SELECT slug, ori, state, kind, agency_type FROM agencies WHERE slug IN :slugs")
                        .bindparams(bindparam("slugs", expanding=True)), {"slugs": list(slugs)}).mappings()
    return {r["slug"]: {c: r[c] for c in _META_COLUMNS} for r in rows}


def _choose_agencies(conn: Connection, slugs: Sequence[str] | None, since: dt.date | None, version: str,
                     limit: int, states: Sequence[str] | None = None,
                     kinds: Sequence[str] | None = None) -> list[tuple[str, str]]:
    if slugs:
        rows = conn.execute(
            text("SELECT slug, name FROM agencies WHERE slug IN :slugs").bindparams(
                bindparam("slugs", expanding=True)), {"slugs": list(slugs)}).all()
        names = {r.slug: r.name for r in rows}
        unknown = [s for s in slugs if s not in names]
        if unknown:
            raise ReportError(f"unknown agencies {', '.join(unknown)}: use slugs from `trustwatch agencies list`")
        return [(s, names[s]) for s in dict.fromkeys(slugs)]
    # "County sheriffs in Texas": states and kinds narrow the agencies ranked by mentions.
    where, params = "", {"v": version, "since": since or dt.date(1970, 1, 1), "limit": limit}
    binds = [bindparam("since", type_=Date())]
    for column, values in (("state", states), ("kind", kinds)):
        if values:
            where += f" AND a.{column} IN :{column}s"
            params[f"{column}s"] = [v.upper() if column == "state" else v for v in values]
            binds.append(bindparam(f"{column}s", expanding=True))
    rows = conn.execute(
        text(
            "SELECT a.slug, a.name, sum(t.mentions) AS n FROM agency_daily_trends t "
            "JOIN agencies a ON a.id = t.agency_id "
            f"WHERE t.grain = 'day' AND t.scorer_version = :v AND t.day >= :since{where} "
            "GROUP BY a.slug, a.name ORDER BY n DESC, a.slug LIMIT :limit"
        ).bindparams(*binds),
        params,
    ).all()
    return [(r.slug, r.name) for r in rows]


def _weeks(conn: Connection, slug: str, since: dt.date | None, version: str) -> list[WeekStats]:
    rows = conn.execute(
        text(
            "SELECT t.day, t.platform, t.scope, t.mentions, t.scored, t.sentiment_sum, t.sentiment_sq_sum, "
            "t.trust_sum, t.trust_sq_sum, t.reposts, t.agency_posts, t.unscored_language "
            "FROM agency_daily_trends t JOIN agencies a ON a.id = t.agency_id "
            "WHERE a.slug = :slug AND t.grain = 'week' AND t.scorer_version = :v AND t.day >= :since "
            "ORDER BY t.day"
        ).bindparams(bindparam("since", type_=Date())),
        {"slug": slug, "v": version, "since": week_start(since) if since else dt.date(1970, 1, 1)},
    )
    weeks: dict[dt.date, WeekStats] = {}
    for r in rows:
        day = r.day if isinstance(r.day, dt.date) else dt.date.fromisoformat(str(r.day))
        w = weeks.setdefault(day, WeekStats(day))
        w.mentions_by_platform[r.platform] = w.mentions_by_platform.get(r.platform, 0) + r.mentions
        if r.scope == "thread":
            w.thread += r.mentions
        else:
            w.direct += r.mentions
        w.reposts += r.reposts
        w.agency_posts += r.agency_posts
        w.scored += r.scored
        w.unscored_language += r.unscored_language
        w.sentiment_sum += r.sentiment_sum
        w.sentiment_sq_sum += r.sentiment_sq_sum
        w.trust_sum += r.trust_sum
        w.trust_sq_sum += r.trust_sq_sum
    return [weeks[k] for k in sorted(weeks)]


@dataclass
class Unscored:
    """Posts of the period left without a score because they are not in English, by language code."""

    by_language: dict[str, int]

    @property
    def posts(self) -> int:
        """How many posts were left out of the sentiment and trust figures."""
        return sum(self.by_language.values())

    def sentence(self) -> str:
        """What the report and the command line say about them."""
        if not self.posts:
            return "No post was left unscored for its language."
        languages = ", ".join(f"{code} {n:,}" for code, n in self.by_language.items())
        return (f"{self.posts:,} posts were left unscored because they are not in English ({languages}): "
                "they count as mentions but not in the sentiment and trust figures.")


def unscored_language(engine: Engine, since: dt.date | None = None, scorer_version: str | None = None
                      ) -> Unscored:
    """Posts (not post-agency pairs) left unscored for their language, since ``since``, by language: the
    count the report shows, read from ``post_scores`` so a post naming two agencies counts once."""
    with engine.connect() as conn:
        return _unscored(conn, since, _pick_version(conn, scorer_version))


def _unscored(conn: Connection, since: dt.date | None, version: str) -> Unscored:
    start = dt.datetime.combine(since or dt.date(1970, 1, 1), dt.time(), tzinfo=dt.UTC)
    rows = conn.execute(
        text(
            "SELECT u.reason, count(*) AS n FROM ("
            "  SELECT DISTINCT s.post_id, s.unscored_reason AS reason FROM post_scores s "
            "  JOIN posts p ON p.id = s.post_id "
            "  WHERE s.scorer = :scorer AND s.scorer_version = :v AND s.unscored_reason LIKE 'language:%' "
            "  AND p.deleted_at IS NULL AND p.created_at >= :start) u "
            "GROUP BY u.reason ORDER BY n DESC, u.reason"
        ).bindparams(bindparam("start", type_=UTCDateTime())),
        {"scorer": SCORER_NAME, "v": version, "start": start},
    )
    return Unscored({r.reason.split(":", 1)[1]: r.n for r in rows})


def _alerts(conn: Connection, slug: str, since: dt.date | None, version: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT day, mentions, baseline_median, baseline_mad, robust_z, mean_sentiment, mean_trust, top_posts "
            "FROM agency_alerts WHERE agency = :slug AND scorer_version = :v AND day >= :since ORDER BY day"
        ).bindparams(bindparam("since", type_=Date())),
        {"slug": slug, "v": version, "since": since or dt.date(1970, 1, 1)},
    ).mappings()
    out = []
    for r in rows:
        item = dict(r)
        top = item["top_posts"]
        item["top_posts"] = json.loads(top) if isinstance(top, str) else (top or [])
        out.append(item)
    return out


def _samples(conn: Connection, slug: str, since: dt.date | None, version: str) -> dict[str, list[dict[str, Any]]]:
    start = dt.datetime.combine(since or dt.date(1970, 1, 1), dt.time(), tzinfo=dt.UTC)
    base = (
        "SELECT p.platform, p.url, p.created_at, p.title, p.text, s.sentiment, s.trust_score, "
        "coalesce(p.like_count, 0) + coalesce(p.repost_count, 0) + coalesce(p.reply_count, 0) "
        "+ coalesce(p.quote_count, 0) + coalesce(p.score, 0) AS engagement "
        "FROM post_scores s JOIN posts p ON p.id = s.post_id JOIN agencies a ON a.id = s.agency_id "
        "WHERE a.slug = :slug AND s.scorer = :scorer AND s.scorer_version = :v AND p.deleted_at IS NULL "
        "AND p.created_at >= :start AND p.kind <> 'repost' AND NOT p.author_is_agency ORDER BY {order}, p.id LIMIT :n"
    )
    out = {}
    for label, order in (("Most trusting", "s.trust_score DESC"), ("Most distrusting", "s.trust_score ASC"),
                         ("Most engaged", "engagement DESC")):
        stmt = text(base.format(order=order)).bindparams(bindparam("start", type_=UTCDateTime())).columns(
            created_at=UTCDateTime())
        out[label] = [dict(r) for r in conn.execute(stmt, {"slug": slug, "scorer": SCORER_NAME, "v": version,
                                                          "start": start, "n": SAMPLE_POSTS}).mappings()]
    return out


def _chart(section: AgencySection) -> str:
    """The agency's three-panel chart as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = [w.week for w in section.weeks]
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.2), sharex=True, dpi=80,
                             gridspec_kw={"height_ratios": [1.3, 1, 1]})
    try:
        bottom = [0] * len(weeks)
        platforms = sorted({p for w in section.weeks for p in w.mentions_by_platform})
        for platform in platforms:
            values = [w.mentions_by_platform.get(platform, 0) for w in section.weeks]
            axes[0].bar(weeks, values, width=6, align="edge", bottom=bottom, label=platform,
                        color=PLATFORM_COLORS.get(platform, "#888888"))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        for alert in section.alerts:
            day = alert["day"] if isinstance(alert["day"], dt.date) else dt.date.fromisoformat(str(alert["day"]))
            axes[0].axvline(dt.datetime.combine(day, dt.time(12)), color="#d62828", linestyle="--", linewidth=1)
        axes[0].set_ylabel("mentions / week")
        if platforms:
            axes[0].legend(loc="upper left", fontsize=8)
        if section.alerts:
            axes[0].set_title("dashed lines: spike alerts", fontsize=8, loc="right")
        for ax, what, color in ((axes[1], "sentiment", "#457b9d"), (axes[2], "trust", "#2a9d8f")):
            points = [(w.week, w.mean(what), w.stddev(what) or 0.0) for w in section.weeks if w.scored]
            if points:
                xs = [p[0] + dt.timedelta(days=3) for p in points]  # mid-week, over the bar
                means = [p[1] for p in points]
                ax.plot(xs, means, marker="o", markersize=3, color=color, label=f"mean {what}")
                ax.fill_between(xs, [m - s for m, s in zip(means, [p[2] for p in points], strict=True)],
                                [m + s for m, s in zip(means, [p[2] for p in points], strict=True)],
                                color=color, alpha=0.2, label="± 1 sd")
                ax.legend(loc="upper left", fontsize=8)
            ax.axhline(0, color="#999999", linewidth=0.8)
            ax.set_ylim(-1.05, 1.05)
            ax.set_ylabel(f"{what} (mean)")
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _post_html(post: dict[str, Any]) -> str:
    body = post.get("text") or ""
    if post.get("title"):
        body = f"{post['title']} — {body}"
    if len(body) > 280:
        body = body[:279] + "…"
    when = post.get("created_at")
    when_text = when.strftime("%Y-%m-%d %H:%M UTC") if isinstance(when, dt.datetime) else str(when or "")[:16]
    url = post.get("url")
    link = f' <a href="{html.escape(url, quote=True)}">link</a>' if url else ""
    scores = (f"trust {_fmt(post.get('trust_score'))}, sentiment {_fmt(post.get('sentiment'))}, "
              f"engagement {_fmt(post.get('engagement'))}")
    return (f'<li class="post"><span class="meta">{html.escape(str(post.get("platform", "")))} · '
            f'{html.escape(when_text)} · {scores}{link}</span><br>{html.escape(body)}</li>')


def _section_html(section: AgencySection, chart: str) -> str:
    rows = "".join(
        f"<tr><td>{w.week.isoformat()}</td><td>{w.mentions}</td><td>{w.direct}</td><td>{w.thread}</td>"
        f"<td>{w.reposts}</td><td>{w.agency_posts}</td><td>{w.scored}</td><td>{w.unscored_language}</td><td>{_fmt(w.mean('sentiment'))}</td><td>{_fmt(w.stddev('sentiment'))}</td>"
        f"<td>{_fmt(w.mean('trust'))}</td><td>{_fmt(w.stddev('trust'))}</td></tr>"
        for w in section.weeks
    )
    if section.alerts:
        alert_rows = "".join(
            f"<tr><td>{_fmt(a['day'])}</td><td>{a['mentions']}</td><td>{_fmt(a['baseline_median'], 1)}</td>"
            f"<td>{_fmt(a['robust_z'], 1)}</td><td>{_fmt(a['mean_trust'])}</td>"
            f"<td><ul>{''.join(_post_html(p) for p in a['top_posts'])}</ul></td></tr>"
            for a in section.alerts
        )
        alerts = (
            "<table class=\"alerts\"><tr><th>day</th><th>mentions</th><th>baseline median</th><th>robust z</th>"
            f"<th>mean trust</th><th>top posts</th></tr>{alert_rows}</table>"
        )
    else:
        alerts = '<p class="none">No spike alerts in this period.</p>'
    samples = "".join(
        f"<h4>{html.escape(label)}</h4><ul>{''.join(_post_html(p) for p in posts)}</ul>"
        if posts else f"<h4>{html.escape(label)}</h4><p class=\"none\">No scored posts.</p>"
        for label, posts in section.samples.items()
    )
    slug = html.escape(section.slug, quote=True)
    return f"""
<section class="agency" id="agency-{slug}">
<h2>{html.escape(section.name)} <small>({html.escape(section.slug)})</small></h2>
<p class="meta">ORI {_fmt(section.meta.get("ori"))} · state {_fmt(section.meta.get("state"))} ·
{_fmt(section.meta.get("kind"))} · FBI type {_fmt(section.meta.get("agency_type"))}</p>
<img class="chart" alt="weekly mentions, sentiment and trust of {slug}" src="data:image/png;base64,{chart}">
<h3>Weekly trend</h3>
<table class="weekly"><tr><th>week (Monday)</th><th>mentions</th><th>direct</th><th>thread</th><th>reposts</th>
<th>agency posts</th><th>scored</th><th>not in English</th>
<th>mean sentiment</th><th>sd</th><th>mean trust</th><th>sd</th></tr>{rows}</table>
<h3>Alerts</h3>
{alerts}
<h3>Sample posts</h3>
{samples}
</section>"""


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:last-child ul{text-align:left}
.post{margin:.4em 0;list-style:none}.meta{color:#666;font-size:.85em}img.chart{max-width:100%}
.none{color:#666;font-style:italic}section.agency{border-top:2px solid #ccc;margin-top:2em}
"""


def write_report(engine: Engine, out: Path, agencies: Sequence[str] | None = None, since: dt.date | None = None,
                 scorer_version: str | None = None, max_agencies: int = DEFAULT_MAX_AGENCIES,
                 states: Sequence[str] | None = None, kinds: Sequence[str] | None = None) -> Path:
    """Write the HTML trend report to ``out`` and return its path.

    ``agencies``: slugs to show (default: the ``max_agencies`` most mentioned in the period, of ``states``
    and ``kinds`` when given: ``states=["TX"], kinds=["sheriff"]`` for the county sheriffs of Texas);
    ``since``: first day shown (default: everything); ``scorer_version``: the version whose scores are
    shown (default: the current one when rolled up, else the most recently refreshed).
    """
    with engine.connect() as conn:
        version = _pick_version(conn, scorer_version)
        chosen = _choose_agencies(conn, agencies, since, version, max_agencies, states, kinds)
        meta = _agency_meta(conn, [slug for slug, _ in chosen])
        sections = [
            AgencySection(slug, name, _weeks(conn, slug, since, version), _alerts(conn, slug, since, version),
                          _samples(conn, slug, since, version), meta.get(slug, {}))
            for slug, name in chosen
        ]
        unscored = _unscored(conn, since, version)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    period = f"since {since.isoformat()}" if since else "all collected data"
    overview = "".join(
        f'<tr><td style="text-align:left"><a href="#agency-{html.escape(s.slug, quote=True)}">'
        f"{html.escape(s.name)}</a></td><td>{sum(w.mentions for w in s.weeks)}</td>"
        f"<td>{_fmt(_pooled_mean(s.weeks, 'sentiment'))}</td><td>{_fmt(_pooled_mean(s.weeks, 'trust'))}</td>"
        f"<td>{sum(w.unscored_language for w in s.weeks)}</td>"
        f"<td>{len(s.alerts)}</td><td>{_fmt(s.meta.get('ori'))}</td><td>{_fmt(s.meta.get('state'))}</td>"
        f"<td>{_fmt(s.meta.get('kind'))}</td><td>{_fmt(s.meta.get('agency_type'))}</td></tr>"
        for s in sections
    )
    body = "".join(_section_html(s, _chart(s)) for s in sections) if sections else (
        '<p class="none">No agency has mentions in this period.</p>')
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>trustwatch trend report</title><style>{_CSS}</style></head>
<body>
<header><h1>trustwatch trend report</h1>
<p>Generated {generated}; {html.escape(period)}; scorer {html.escape(SCORER_NAME)} version
{html.escape(version)}.</p></header>
<section id="summary"><h2>Summary</h2>
<p id="unscored-language">{html.escape(unscored.sentence())}</p>
<table><tr><th>agency</th><th>mentions</th><th>mean sentiment</th><th>mean trust</th><th>not in English</th>
<th>alerts</th><th>ORI</th><th>state</th><th>kind</th><th>FBI type</th></tr>
{overview}</table></section>
{body}
<section id="method"><h2>Method</h2>
<p>Mentions count posts that name an agency (direct) or sit in a thread about it (thread); deleted and
withheld posts are left out. Sentiment is VADER's compound score of the sentences around the mention;
trust is the trust lexicon (docs/ANALYSIS.md) read over the same sentences, with VADER as a weaker second
voice, in [-1, 1]. Bands show ± one standard deviation of the week's scores. An alert marks a day whose
mentions exceed the agency's trailing 28-day median by a robust z-score (median absolute deviation) of at
least 3.5, with at least 5 mentions. VADER and the trust lexicon read English only: posts in another
language (X's label; an offline detector for Reddit) are counted as mentions, in "not in English", and
left out of the means.</p></section>
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out


def _pooled_mean(weeks: Sequence[WeekStats], what: str) -> float | None:
    scored = sum(w.scored for w in weeks)
    return sum(getattr(w, f"{what}_sum") for w in weeks) / scored if scored else None


def weekly_table(engine: Engine, slug: str, since: dt.date | None = None,
                 scorer_version: str | None = None) -> list[WeekStats]:
    """The weekly numbers the report charts for one agency (for notebooks and tests)."""
    with engine.connect() as conn:
        return _weeks(conn, slug, since, _pick_version(conn, scorer_version))

