"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact, what analysts query with ->>).
#: Python None is SQL NULL, never the JSON value ``null``: a tombstone's ``raw IS NULL`` must be true.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


#: How SQLite stores a time: ISO 8601 UTC with a ``T``, always six fraction digits and a ``Z``
#: (``2026-11-29T13:40:50.710000Z``). Fixed width, so text order is time order, and an analyst's literal
#: ``'2026-11-29'`` or ``'2026-11-29T13:00:00Z'`` compares as the same instant would (SQLAlchemy's default
#: ``2026-11-29 13:40:50.710000`` sorts before every ``T`` literal of the same day).
SQLITE_TIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06dZ"
)
_SQLITE_TIME_REGEXP = r"(\d+)-(\d+)-(\d+)[T ](\d+):(\d+):(\d+)(?:\.(\d+))?"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps: timestamptz on PostgreSQL, ISO 8601 UTC text on SQLite.

    SQLite has no time zones, so values are stored as UTC text in :data:`SQLITE_TIME_FORMAT` and given
    back aware; a naive value handed in is refused rather than guessed, since a silent local-time guess
    shifts a whole trend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(
                sqlite.DATETIME(storage_format=SQLITE_TIME_FORMAT, regexp=_SQLITE_TIME_REGEXP)
            )
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; trustwatch stores UTC-aware times")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # a raw text() column without the type's result processor
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def local_midnight(day: dt.date, zone: str | None) -> dt.datetime:
    """The UTC instant at which ``day`` begins in the IANA time zone ``zone`` (UTC when None or unknown):
    where a rollup period of an agency starts, stored with the row for SQL that cannot convert (SQLite)."""
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def clean_text(value: str | None) -> str | None:
    """Drop NUL characters and lone surrogates, which PostgreSQL text and JSONB refuse."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


def json_serializer(value: Any) -> str:
    """JSON for the store, fast (orjson); NULs and lone surrogates replaced, since PostgreSQL refuses them."""
    try:
        data = orjson.dumps(value, default=str)
    except TypeError:  # lone surrogates are not UTF-8, or a type orjson does not know
        return json.dumps(_clean_json(value), ensure_ascii=False, default=str)
    if b"\\u0000" in data:
        return json.dumps(_clean_json(value), ensure_ascii=False, default=str)
    return data.decode("utf-8")
