"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact, what analysts query with ->>).
#: Python None is SQL NULL, never the JSON value ``null``: a tombstone's ``raw IS NULL`` must be true.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps: timestamptz on PostgreSQL, UTC text on SQLite.

    SQLite has no time zones, so values are stored as naive UTC and given back aware; a naive value
    handed in is refused rather than guessed, since a silent local-time guess shifts a whole trend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

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
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


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
