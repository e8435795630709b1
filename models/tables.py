"""The store's tables as SQLAlchemy 2 typed models.

Analysts query these tables directly, so every table and column carries a comment: the data
dictionary shows in ``psql \\d+`` and in SQL clients.  Platform ids are text (X ids exceed 2^53);
times are aware UTC; windows are half-open [start, end).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from trustwatch.models.types import JSONType, UTCDateTime

#: Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for tables that grow.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Agency(Base):
    """A law-enforcement agency from the registry (agencies/*.yaml)."""

    __tablename__ = "agencies"
    __table_args__ = (
        Index("ix_agencies_ori", "ori", unique=True),
        {"comment": "Law-enforcement agencies from the registry; removed entries become inactive."},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="Surrogate key.")
    slug: Mapped[str] = mapped_column(String(80), unique=True, comment="Stable identifier, e.g. 'nypd'.")
    name: Mapped[str] = mapped_column(String(200), comment="Official name.")
    kind: Mapped[str] = mapped_column(
        String(20), comment="municipal, sheriff, state, federal, transit, campus, tribal or special (FBI 'Other')."
    )
    jurisdiction: Mapped[str | None] = mapped_column(String(200), comment="City or county served.")
    state: Mapped[str | None] = mapped_column(String(2), comment="Two-letter state code; NULL for federal.")
    aliases: Mapped[list[str]] = mapped_column(JSONType, default=list, comment="Names, aliases, acronyms.")
    x_handles: Mapped[list[str]] = mapped_column(JSONType, default=list, comment="Official X handles, no '@'.")
    hashtags: Mapped[list[str]] = mapped_column(JSONType, default=list, comment="Hashtags, no '#'.")
    subreddits: Mapped[list[str]] = mapped_column(
        JSONType, default=list, comment="The city's or county's subreddits, no 'r/'."
    )
    active: Mapped[bool] = mapped_column(
        Boolean, default=True, comment="False once removed from the registry; its posts stay attributed."
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Last registry sync that changed it.")
    ori: Mapped[str | None] = mapped_column(
        String(9), comment="FBI Originating Agency Identifier (unique where known): join FBI crime data on it."
    )
    agency_type: Mapped[str | None] = mapped_column(
        String(40), comment="The FBI's agency type: City, County, State Police, University or College, Tribal, "
        "Other State Agency, Other; NULL for agencies absent from the FBI list."
    )
    county: Mapped[str | None] = mapped_column(String(100), comment="County of the agency (FBI list).")
    latitude: Mapped[float | None] = mapped_column(Float, comment="Latitude (FBI list; often the county centroid).")
    longitude: Mapped[float | None] = mapped_column(Float, comment="Longitude (FBI list; often the county centroid).")
    nibrs: Mapped[bool | None] = mapped_column(
        Boolean, comment="Reported to NIBRS when the FBI list was retrieved (2018)."
    )
    timezone: Mapped[str | None] = mapped_column(
        String(64), comment="IANA timezone (from the coordinates, else the state): its trend days start at its "
        "midnight."
    )
    parent: Mapped[str | None] = mapped_column(
        String(80), comment="Slug of the agency people name instead (state-police troop -> the state police)."
    )
    tracked: Mapped[bool] = mapped_column(
        Boolean, server_default=true(),
        comment="Queries are compiled for it; every active agency is matched whether tracked or only known.",
    )
    matched: Mapped[bool] = mapped_column(
        Boolean, server_default=true(),
        comment="False for known rows that are not police (prosecutors, fire investigators): never attributed.",
    )


class Author(Base):
    """An account on a platform."""

    __tablename__ = "authors"
    __table_args__ = (
        UniqueConstraint("platform", "platform_user_id"),
        {"comment": "Accounts that wrote collected posts; one row per platform account."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    platform_user_id: Mapped[str] = mapped_column(
        String(64), comment="The platform's account id as text (Reddit: the username)."
    )
    username: Mapped[str | None] = mapped_column(String(100), comment="Handle or username at last sight.")
    display_name: Mapped[str | None] = mapped_column(String(200), comment="Display name at last sight.")
    followers_count: Mapped[int | None] = mapped_column(Integer, comment="Followers at last sight.")
    following_count: Mapped[int | None] = mapped_column(Integer, comment="Accounts followed at last sight.")
    post_count: Mapped[int | None] = mapped_column(Integer, comment="Posts written, at last sight.")
    account_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Account creation.")
    verified: Mapped[bool | None] = mapped_column(Boolean, comment="Verified flag at last sight.")
    location: Mapped[str | None] = mapped_column(String(200), comment="Self-reported location.")
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="First collection that saw it.")
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Latest collection that saw it.")


class Post(Base):
    """A post, reply, quote, repost, submission or comment."""

    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("platform", "platform_post_id"),
        Index("ix_posts_created_at", "created_at"),
        Index("ix_posts_author_id", "author_id"),
        # Tombstones since the last rollup refresh (analysis.trends.stale_days); few rows, so partial.
        Index("ix_posts_deleted_at", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL"),
              sqlite_where=text("deleted_at IS NOT NULL")),
        CheckConstraint(
            "kind IN ('post', 'reply', 'quote', 'repost', 'submission', 'comment')", name="kind"
        ),
        {"comment": "Collected posts, one row per platform post; metrics are the latest seen."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    platform_post_id: Mapped[str] = mapped_column(String(64), comment="The platform's post id as text.")
    kind: Mapped[str] = mapped_column(
        String(12), comment="post, reply, quote, repost (X); submission, comment (Reddit)."
    )
    # No foreign key (migration 0004): write_page takes the id from the author it upserts in the same
    # statement, and the per-post FK trigger cost a tenth of the page write.
    author_id: Mapped[int | None] = mapped_column(
        BigId, comment="The author (authors.id), when the response included it."
    )
    author_platform_id: Mapped[str | None] = mapped_column(
        String(64), comment="The author's platform id, kept even when the author record was missing."
    )
    text: Mapped[str] = mapped_column(Text, default="", comment="Full text (X note tweets in full).")
    title: Mapped[str | None] = mapped_column(Text, comment="Reddit submission title.")
    lang: Mapped[str | None] = mapped_column(String(16), comment="Language code as the platform detected it.")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When the post was made (UTC).")
    url: Mapped[str | None] = mapped_column(Text, comment="Link to the post.")
    conversation_id: Mapped[str | None] = mapped_column(String(64), comment="X conversation id.")
    parent_platform_id: Mapped[str | None] = mapped_column(
        String(64), comment="The post replied to (X reply, Reddit comment parent)."
    )
    root_platform_id: Mapped[str | None] = mapped_column(
        String(64), comment="Reddit: the submission of a comment; X: the reposted or quoted tweet."
    )
    community: Mapped[str | None] = mapped_column(String(100), comment="Subreddit, for Reddit posts.")
    like_count: Mapped[int | None] = mapped_column(Integer, comment="Latest likes (X).")
    repost_count: Mapped[int | None] = mapped_column(Integer, comment="Latest reposts (X).")
    reply_count: Mapped[int | None] = mapped_column(Integer, comment="Latest replies / comments.")
    quote_count: Mapped[int | None] = mapped_column(Integer, comment="Latest quotes (X).")
    score: Mapped[int | None] = mapped_column(Integer, comment="Latest score (Reddit).")
    withheld: Mapped[list[str] | None] = mapped_column(
        JSONType, comment="Countries where the content is withheld (X); NULL when not withheld."
    )
    removed_by_category: Mapped[str | None] = mapped_column(
        String(40), comment="Reddit's removed_by_category (moderator, deleted, ...)."
    )
    edit_history_ids: Mapped[list[str] | None] = mapped_column(JSONType, comment="X edit history ids.")
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType, comment="The raw API object, as received.")
    first_collected_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="First collection that stored it; never changes."
    )
    last_collected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Latest collection that saw it.")
    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="When it was found deleted, removed or withheld; text is scrubbed by compliance."
    )
    deleted_reason: Mapped[str | None] = mapped_column(
        String(40), comment="'[deleted]', '[removed]', 'not_found', 'suspended', 'withheld', ..."
    )
    author_is_agency: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        comment="True when the author is an agency's own X account (a registry handle): agency speech, "
                "counted apart from public mentions.",
    )


class PostMention(Base):
    """Evidence that a post mentions an agency."""

    __tablename__ = "post_mentions"
    __table_args__ = (
        UniqueConstraint("post_id", "agency_id", "match_kind", "matched_term"),
        Index("ix_post_mentions_agency_time", "agency_id", "post_created_at"),
        CheckConstraint(
            "match_kind IN ('handle', 'hashtag', 'name', 'alias', 'community', 'thread')", name="match_kind"
        ),
        {"comment": "Which posts mention which agencies, with the matched term as evidence."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    # No foreign keys on this high-volume table: write_page takes both ids from the same transaction, and
    # the per-row FK triggers cost half of the page write (README, "The store").
    post_id: Mapped[int] = mapped_column(BigId, comment="The post (posts.id).")
    agency_id: Mapped[int] = mapped_column(Integer, comment="The agency mentioned (agencies.id).")
    matched_term: Mapped[str] = mapped_column(String(200), comment="The registry term that matched.")
    match_kind: Mapped[str] = mapped_column(
        String(12),
        comment="handle, hashtag, name, alias, community (agency's subreddit), thread (inherited).",
    )
    start_offset: Mapped[int | None] = mapped_column(Integer, comment="Start of the match in the text.")
    end_offset: Mapped[int | None] = mapped_column(Integer, comment="End of the match in the text.")
    post_created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="The post's created_at, copied for fast per-agency time queries."
    )
    platform: Mapped[str] = mapped_column(String(10), comment="The post's platform, copied for rollups.")
    via_repost: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        comment="True when the match is in the reposted text of a repost (amplification, not a direct "
                "mention by the reposter).",
    )


class AmbiguousMention(Base):
    """A shared agency name a post uses without settling which agency it means (issue 16)."""

    __tablename__ = "ambiguous_mentions"
    __table_args__ = (
        UniqueConstraint("post_id", "term"),
        Index("ix_ambiguous_mentions_created_term", "post_created_at", "term"),
        {"comment": "Names several agencies share (\"Clinton PD\": 19 agencies), found in posts that do not say "
                    "which one they mean: attributed to none, kept so analysts can count what was left out. "
                    "One row per post and name; see the view ambiguous_mentions_daily."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    # No foreign key, like post_mentions: write_page takes the post id from the same transaction.
    post_id: Mapped[int] = mapped_column(BigId, comment="The post (posts.id).")
    term: Mapped[str] = mapped_column(String(200), comment="The shared name as the registry writes it, e.g. "
                                                           "'Clinton PD'.")
    candidates: Mapped[list[str]] = mapped_column(
        JSONType, comment="Slugs of the agencies the name may mean (agencies.slug; join there for ori, state, "
                          "type), sorted; as the registry stood at the last sync (agencies sync matches the post "
                          "again)."
    )
    candidate_count: Mapped[int] = mapped_column(Integer, comment="How many agencies the name may mean.")
    start_offset: Mapped[int | None] = mapped_column(Integer, comment="Start of the name in the text.")
    end_offset: Mapped[int | None] = mapped_column(Integer, comment="End of the name in the text.")
    post_created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="The post's created_at, copied for per-day counts."
    )
    platform: Mapped[str] = mapped_column(String(10), comment="The post's platform, copied for counts.")


class MetricSnapshot(Base):
    """Engagement of a post each time it is seen."""

    __tablename__ = "metric_snapshots"
    __table_args__ = (
        Index("ix_metric_snapshots_post_observed", "post_id", "observed_at"),
        # Posts seen again since the last rollup refresh (analysis.trends.stale_days).  BRIN on PostgreSQL:
        # rows arrive in observed_at order, so a few bytes per block range index the table at no write cost.
        Index("ix_metric_snapshots_observed_at", "observed_at", postgresql_using="brin"),
        {"comment": "Engagement counters of a post at each collection that saw it."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    # No foreign keys on this high-volume table (see post_mentions).
    post_id: Mapped[int] = mapped_column(BigId, comment="The post (posts.id).")
    # The partition key on PostgreSQL (models/partitions.py): a post's snapshots live in its month.
    post_created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="The post's created_at, copied: the partition key on PostgreSQL."
    )
    run_id: Mapped[int | None] = mapped_column(
        BigId, comment="The collection run that observed it (collection_runs.id)."
    )
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When it was observed.")
    like_count: Mapped[int | None] = mapped_column(Integer, comment="Likes.")
    repost_count: Mapped[int | None] = mapped_column(Integer, comment="Reposts.")
    reply_count: Mapped[int | None] = mapped_column(Integer, comment="Replies / comments.")
    quote_count: Mapped[int | None] = mapped_column(Integer, comment="Quotes.")
    score: Mapped[int | None] = mapped_column(Integer, comment="Score (Reddit).")


class CollectionRun(Base):
    """The ledger: one row per query and window collected (or imported)."""

    __tablename__ = "collection_runs"
    __table_args__ = (
        Index("ix_collection_runs_lookup", "platform", "query_key", "window_start", "window_end"),
        {"comment": "The ledger of collections and imports: what was asked, what came back, what failed."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    source: Mapped[str] = mapped_column(
        String(20), default="api", comment="'api' (collector), 'import' (archive file), 'compliance'."
    )
    dag_id: Mapped[str | None] = mapped_column(String(250), comment="Airflow DAG id, when run by Airflow.")
    dag_run_id: Mapped[str | None] = mapped_column(String(250), comment="Airflow DAG run id.")
    task_id: Mapped[str | None] = mapped_column(String(250), comment="Airflow task id (and map index).")
    query_key: Mapped[str] = mapped_column(String(100), comment="Stable key of the compiled query.")
    query_version: Mapped[str] = mapped_column(String(64), comment="Hash of the query text.")
    query_text: Mapped[str] = mapped_column(Text, comment="The query as sent (or the file imported).")
    window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Window start (inclusive).")
    window_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Window end (exclusive).")
    status: Mapped[str] = mapped_column(
        String(12), comment="running, success, failed, dry_run; a failed run is resumed by the next try."
    )
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When the run started.")
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="When it ended.")
    attempts: Mapped[int] = mapped_column(Integer, default=1, comment="Tries that worked on this row.")
    pages: Mapped[int] = mapped_column(Integer, default=0, comment="Pages committed.")
    requests: Mapped[int] = mapped_column(Integer, default=0, comment="HTTP requests made (billing).")
    posts_seen: Mapped[int] = mapped_column(Integer, default=0, comment="Posts read (X bills per post).")
    posts_new: Mapped[int] = mapped_column(Integer, default=0, comment="Posts stored for the first time.")
    posts_updated: Mapped[int] = mapped_column(Integer, default=0, comment="Posts seen again and refreshed.")
    rejected: Mapped[int] = mapped_column(Integer, default=0, comment="Records kept aside in rejected_payloads.")
    api_errors: Mapped[int] = mapped_column(
        Integer, default=0, comment="Partial errors inside successful responses (X errors[])."
    )
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0, comment="Times a rate limit was waited.")
    rate_limit_wait_seconds: Mapped[float] = mapped_column(Float, default=0.0, comment="Seconds waited.")
    expected_posts: Mapped[int | None] = mapped_column(Integer, comment="Dry run: posts the counts endpoint expects.")
    last_cursor: Mapped[str | None] = mapped_column(Text, comment="Token of the next page; resumes a failed run.")
    coverage_gap: Mapped[bool] = mapped_column(
        Boolean, default=False, comment="True when the source could not reach back to window_start."
    )
    error: Mapped[str | None] = mapped_column(Text, comment="Why the run failed, without secrets.")
    lease_owner: Mapped[str | None] = mapped_column(
        String(200),
        comment="Who holds the running row: host, pid and token of the process; NULL when not running.")
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime,
        comment="Until when the holder's claim stands (renewed with each page); a later run takes over after.")
    notes: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, comment="Details: skipped subreddits, gap reasons, import file names."
    )


class Watermark(Base):
    """Newest post seen per platform and query version, so no post is fetched (and paid for) twice."""

    __tablename__ = "watermarks"
    __table_args__ = (
        UniqueConstraint("platform", "query_key"),
        {"comment": "Newest id and time collected per platform and query version."},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="Surrogate key.")
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    query_key: Mapped[str] = mapped_column(String(100), comment="Query key (includes its version).")
    newest_id: Mapped[str | None] = mapped_column(String(64), comment="Newest post id collected.")
    newest_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Newest post time collected.")
    covered_until: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="End of the latest complete window."
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Last advance.")


class RejectedPayload(Base):
    """A record that could not be normalized, kept with the reason."""

    __tablename__ = "rejected_payloads"
    __table_args__ = (
        Index("ix_rejected_payloads_run_id", "run_id"),
        {"comment": "Raw records that could not be normalized, kept aside with the reason."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("collection_runs.id"), comment="The run.")
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    platform_post_id: Mapped[str | None] = mapped_column(String(64), comment="The post id, when readable.")
    source: Mapped[str | None] = mapped_column(Text, comment="Where it came from (URL, file:line).")
    reason: Mapped[str] = mapped_column(Text, comment="Why it was rejected.")
    payload: Mapped[Any] = mapped_column(JSONType, comment="The raw record (or the raw line as text).")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When it was rejected.")


class PostScore(Base):
    """Sentiment and trust of a post toward one agency, by one scorer version."""

    __tablename__ = "post_scores"
    __table_args__ = (
        UniqueConstraint("post_id", "agency_id", "scorer", "scorer_version"),
        Index("ix_post_scores_agency_id", "agency_id"),
        {"comment": "Scores per post and agency; each scorer version keeps its own rows."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    # No foreign key (migration 0026): one to the partitioned posts would have to name (id, created_at);
    # scores are rebuilt by the scorer, and retention deletes a month's scores with its posts.
    post_id: Mapped[int] = mapped_column(BigId, comment="The post.")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), comment="The agency scored toward.")
    scorer: Mapped[str] = mapped_column(String(40), comment="Scorer name, e.g. 'vader+trust-lexicon'.")
    scorer_version: Mapped[str] = mapped_column(String(20), comment="Scorer version.")
    sentiment: Mapped[float | None] = mapped_column(
        Float, comment="VADER compound sentiment in [-1, 1]; NULL when unscored (see unscored_reason)."
    )
    trust_score: Mapped[float | None] = mapped_column(
        Float, comment="Trust score in [-1, 1]; NULL when unscored (see unscored_reason)."
    )
    unscored_reason: Mapped[str | None] = mapped_column(
        String(40), comment="Why the post has no numbers, e.g. 'language:de' (the scorer reads English only)."
    )
    scored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When it was scored.")


class AgencyDailyTrend(Base):
    """Daily and weekly rollups per agency, platform and mention scope (direct or thread)."""

    __tablename__ = "agency_daily_trends"
    __table_args__ = (
        # Leading agency and version: the analyst views read one agency's periods of one version.
        UniqueConstraint("agency_id", "scorer_version", "grain", "day", "platform", "scope",
                         name="uq_agency_daily_trends_key"),
        Index("ix_agency_daily_trends_day", "day"),
        CheckConstraint("grain IN ('day', 'week')", name="grain"),
        {"comment": "Daily and weekly mentions, authors, sentiment and trust per agency, platform and scope; "
                    "read it through the views agency_daily_trend and agency_weekly_trend."},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, comment="Surrogate key.")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), comment="The agency.")
    grain: Mapped[str] = mapped_column(
        String(4), default="day", server_default="day",
        comment="'day': one day; 'week': the ISO week (Monday to Sunday) starting on `day`; in the agency's timezone.",
    )
    day: Mapped[dt.date] = mapped_column(
        Date,
        comment="The agency's local day (agencies.timezone, UTC without one), or the Monday of the week for grain "
        "'week'.",
    )
    platform: Mapped[str] = mapped_column(String(10), comment="'x' or 'reddit'.")
    scope: Mapped[str] = mapped_column(
        String(10), comment="'direct' (the post names the agency) or 'thread' (only inherited from its thread)."
    )
    scorer_version: Mapped[str] = mapped_column(String(20), comment="Scorer version of the score columns.")
    mentions: Mapped[int] = mapped_column(
        Integer, default=0,
        comment="Public direct mentions: originals, replies and quotes by non-agency authors naming the agency.",
    )
    reposts: Mapped[int] = mapped_column(Integer, default=0, server_default="0",
                                         comment="Reposts of posts mentioning the agency (amplification).")
    agency_posts: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0",
        comment="Posts by agency accounts mentioning the agency (agency speech).",
    )
    unique_authors: Mapped[int] = mapped_column(Integer, default=0, comment="Distinct authors in the period.")
    scored: Mapped[int] = mapped_column(Integer, default=0, comment="Posts with a score of this version.")
    unscored_language: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0",
        comment="Posts left unscored because they are not in English (counted in mentions, not in scored).",
    )
    sentiment_sum: Mapped[float] = mapped_column(Float, default=0.0, comment="Sum of sentiment.")
    sentiment_sq_sum: Mapped[float] = mapped_column(
        Float, default=0.0, server_default="0", comment="Sum of squared sentiment (for the spread)."
    )
    trust_sum: Mapped[float] = mapped_column(Float, default=0.0, comment="Sum of trust scores.")
    trust_sq_sum: Mapped[float] = mapped_column(
        Float, default=0.0, server_default="0", comment="Sum of squared trust scores (for the spread)."
    )
    negative: Mapped[int] = mapped_column(Integer, default=0, comment="Scored posts with sentiment <= -0.05.")
    positive: Mapped[int] = mapped_column(Integer, default=0, comment="Scored posts with sentiment >= 0.05.")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Last refresh.")
    # The period's UTC bounds, so SQL without time zone support (SQLite's agency_alerts) finds its posts.
    starts_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="UTC instant the period starts: the agency's local midnight (agencies.timezone; UTC "
        "without one)."
    )
    ends_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="UTC instant the period ends (exclusive): the next local midnight after the day or the "
        "week."
    )


class ApiRateLimit(Base):
    """Request pacing one app shares across collect tasks (X limits full-archive search per app)."""

    __tablename__ = "api_rate_limits"
    __table_args__ = (
        {"comment": "Request pacing shared by every collect task of one app: X limits full-archive search per app."},
    )

    api: Mapped[str] = mapped_column(
        String(60), primary_key=True,
        comment="Endpoint and app, e.g. 'x:search/all:<app key>' (a hash, never the token).",
    )
    next_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="Earliest time the next request of this app may be sent."
    )
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="Start of the current request-count window.")
    window_count: Mapped[int] = mapped_column(Integer, comment="Requests sent in the current window.")


class RegistrySync(Base):
    """The registry the agencies table was last synced from, so an unchanged registry is not compared again."""

    __tablename__ = "registry_sync"
    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        {"comment": "One row: the digest of the agency registry (files and code) last written to agencies; "
                    "a collect run whose registry has the same digest skips the comparison."},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, comment="Always 1.")
    digest: Mapped[str | None] = mapped_column(
        String(64), comment="SHA-256 of the registry files, their parsing code and the schema; NULL after a sync "
                            "of entries that came from elsewhere (tests, a script), which forces the next comparison.")
    agencies: Mapped[int] = mapped_column(Integer, comment="Entries in that registry.")
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="When the sync committed.")
