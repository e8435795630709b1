"""Store the shared agency names a post leaves unsettled (table ``ambiguous_mentions``, issue 16).

A name such as "Clinton PD" belongs to 19 agencies; a post that does not say which one it means is
attributed to none of them.  ``write_page`` writes the page's unsettled names here, in the page's
transaction, so the analyst can count what attribution left out.  Pages rarely carry any: the extra
post-id lookup runs only for those that do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from trustwatch.models.tables import AmbiguousMention, Post

from trustwatch.records import AmbiguityRecord

#: Rows per INSERT (well under SQLite's bound-parameter limit with eight columns).
_CHUNK = 500


def write_ambiguities(conn: Connection, records: Sequence[AmbiguityRecord], stored: Iterable[tuple[str, str]]) -> int:
    """Insert one ``ambiguous_mentions`` row per post and name, for the posts of ``stored`` (platform, id);
    a row already there stays as it is, so rewriting a page changes nothing.  Returns the rows offered."""
    keep = set(stored)
    unique: dict[tuple[str, str, str], AmbiguityRecord] = {}
    for r in records:
        if (r.platform, r.platform_post_id) in keep:
            unique.setdefault((r.platform, r.platform_post_id, r.term[:200]), r)
    if not unique:
        return 0
    t = Post.__table__
    wanted = sorted({(platform, post_id) for platform, post_id, _ in unique})
    ids: dict[tuple[str, str], tuple[int, Any]] = {}
    for i in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(t.c.platform, t.c.platform_post_id, t.c.id, t.c.created_at)
            .where(tuple_(t.c.platform, t.c.platform_post_id).in_(wanted[i:i + _CHUNK]))
        )
        for row in rows:
            ids[(row.platform, row.platform_post_id)] = (row.id, row.created_at)
    values = []
    for (platform, post_id, term), r in sorted(unique.items()):
        target = ids.get((platform, post_id))
        if target is None:
            continue  # refused by the store after all: its ambiguities go with it
        values.append({"post_id": target[0], "term": term, "candidates": sorted(r.candidates),
                       "candidate_count": len(r.candidates), "start_offset": r.start, "end_offset": r.end,
                       "post_created_at": target[1], "platform": platform})
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for i in range(0, len(values), _CHUNK):
        stmt = insert(AmbiguousMention.__table__).on_conflict_do_nothing(index_elements=["post_id", "term"])
        conn.execute(stmt, values[i:i + _CHUNK])
    return len(values)
