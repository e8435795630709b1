"""Archive import at the file level (issue 20 items 2 and 3, issue 14 point 6): cut files, unreadable
files, folders holding other things, twarc2 flattened lines, and files that hold no posts at all."""

from __future__ import annotations

import gzip
import json
import sqlite3
import zlib
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import Engine, func, select
from trustwatch.collectors import archive
from trustwatch.collectors.archive import ArchiveError, import_file
from trustwatch.models.store import get_run, sync_agencies
from trustwatch.models.tables import CollectionRun, Post, RejectedPayload

BASE = 1_860_000_000_000_000_000


@pytest.fixture
def synced(store: Engine, registry) -> Engine:
    sync_agencies(store, registry.entries)
    return store


def tweet(i: int) -> dict:
    tid = str(BASE + i)
    return {"id": tid, "text": f"Thanks to the NYPD for the quick response number {i} " + "pad " * 30,
            "author_id": str(i % 7 + 1), "created_at": "2026-10-01T12:00:00.000Z", "lang": "en",
            "edit_history_tweet_ids": [tid]}


def page_line(i: int) -> str:
    users = [{"id": str(i % 7 + 1), "username": f"user{i % 7}", "name": "U"}]
    return json.dumps({"data": [tweet(i)], "includes": {"users": users}, "meta": {"result_count": 1}})


def gunzip_partial(data: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return d.decompress(data)


def unzstd_partial(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Post.platform_post_id)).scalars())


def runs(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(CollectionRun.__table__).order_by(CollectionRun.id)).all()


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_cut_file_keeps_what_was_read_and_says_partial(suffix: str, synced: Engine, matcher,
                                                         tmp_path: Path) -> None:
    """Item 2: half a gzip lost committed work and stopped with EOFError (and so did every rerun); half a
    zstandard file imported as a plain success."""
    body = ("\n".join(page_line(i) for i in range(1200)) + "\n").encode()
    whole = gzip.compress(body) if suffix == ".gz" else zstandard.ZstdCompressor(level=1).compress(body)
    cut = whole[: len(whole) // 2]
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(cut)
    expected = (gunzip_partial if suffix == ".gz" else unzstd_partial)(cut).count(b"\n")
    assert 100 < expected < 1200

    summary = import_file(synced, "x", path, matcher=matcher, batch_posts=100)
    assert summary.status == "partial"
    got = len(stored_ids(synced))
    assert expected - 1 <= got <= expected + 1  # the cut line itself may or may not be whole
    [row] = runs(synced)
    assert row.status == "partial" and row.notes["truncated_after_line"] == summary.lines
    assert f"after line {summary.lines}" in row.error and "missing" in row.error

    again = import_file(synced, "x", path, matcher=matcher)  # no traceback, nothing read again
    assert again.skipped and again.status == "partial" and "PARTIAL" in again.line()
    assert len(runs(synced)) == 1


def test_one_unreadable_file_fails_alone(synced: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """Item 3: a PermissionError from the fingerprint step stopped the import; the files after it were never
    read.  (The tests run as root, whom permissions do not stop, so the refusal is raised where it came from.)"""
    from trustwatch import cli, tasks

    files = []
    for n, name in enumerate(("a.jsonl", "locked.jsonl", "c.jsonl")):
        files.append(tmp_path / name)
        files[-1].write_text(page_line(n) + "\n")
    real = archive.fingerprint

    def fingerprint(path: Path) -> str:
        if path.name == "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(archive, "fingerprint", fingerprint)
    monkeypatch.setattr(tasks, "engine", lambda: synced)
    code = cli.main(["import", "x", str(tmp_path)])
    _out, err = capsys.readouterr()
    assert code == 1
    assert stored_ids(synced) == {str(BASE), str(BASE + 2)}
    failed = [line for line in err.splitlines() if "locked.jsonl" in line]
    assert len(failed) == 1 and "cannot be read (Permission denied)" in failed[0]
    assert "Traceback" not in err
    with pytest.raises(ArchiveError, match="1 of 3 files failed"):
        tasks.import_archive("x", [str(tmp_path)])


def test_a_folder_imports_only_what_looks_like_an_archive(synced: Engine, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Item 3: a SQLite database in the folder was read as an archive (its pages rejected as bad JSON)."""
    from trustwatch import tasks

    (tmp_path / "a.jsonl").write_text(page_line(1) + "\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as fh:
        fh.write(page_line(2) + "\n")
    db = sqlite3.connect(tmp_path / "store.jsonl")  # even named like an archive: the content decides
    db.execute("create table t (x)")
    db.commit()
    db.close()
    monkeypatch.setattr(tasks, "engine", lambda: synced)
    with caplog.at_level("WARNING"):
        results = tasks.import_archive("x", [str(tmp_path)])
    assert sorted(Path(r["file"]).name for r in results) == ["a.jsonl", "b.jsonl.gz"]
    assert any("store.jsonl: left out, it is a SQLite database" in r.getMessage() for r in caplog.records)
    with synced.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RejectedPayload)).scalar() == 0
    # named explicitly, it fails alone with what it is
    with pytest.raises(ArchiveError, match=r"store\.jsonl is a SQLite database"):
        import_file(synced, "x", tmp_path / "store.jsonl", matcher=None)


def flatten(page: dict) -> list[dict]:
    """What ``twarc2 flatten`` writes for a page: one tweet per line, author and referenced tweets inlined."""
    users = {u["id"]: u for u in page.get("includes", {}).get("users", [])}
    tweets = {t["id"]: t for t in page.get("includes", {}).get("tweets", [])}

    def inline(t: dict) -> dict:
        t = dict(t)
        if t.get("author_id") in users:
            t["author"] = users[t["author_id"]]
        refs = []
        for ref in t.get("referenced_tweets", []):
            ref = dict(ref)
            if ref["id"] in tweets:
                ref["tweet"] = inline(tweets[ref["id"]])
            refs.append(ref)
        if refs:
            t["referenced_tweets"] = refs
        t["__twarc"] = {"url": "https://api.twitter.com/2/tweets/search/recent", "version": "2.14.0"}
        return t

    return [inline(t) for t in page["data"]]


def post_rows(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {r.platform_post_id: (r.kind, r.parent_platform_id, r.root_platform_id, r.author_platform_id, r.text)
                for r in conn.execute(select(Post))}


def test_twarc2_flattened_lines_import_like_the_pages_they_came_from(store: Engine, registry, matcher,
                                                                     realcases: Path, tmp_path: Path) -> None:
    """Issue 14 point 6: twarc2 flatten output imported 0 posts, 0 rejects and `success`."""
    from sqlalchemy import text

    sync_agencies(store, registry.entries)
    source = realcases / "x" / "twarc-csv" / "noflat.jsonl"
    pages = [json.loads(line) for line in source.read_text().splitlines()]
    flat = tmp_path / "flat.jsonl"
    flat.write_text("\n".join(json.dumps(t) for p in pages for t in flatten(p)) + "\n")

    summary = import_file(store, "x", flat, matcher=matcher, keep_all=True)
    from_flat = post_rows(store)
    assert summary.status == "success" and summary.posts_kept == len(from_flat) > 100
    with store.begin() as conn:
        conn.execute(text("DELETE FROM metric_snapshots"))
        conn.execute(text("DELETE FROM post_mentions"))
        conn.execute(text("DELETE FROM posts"))
    import_file(store, "x", source, matcher=matcher, keep_all=True)
    assert post_rows(store) == from_flat


@pytest.mark.parametrize(("kind", "objects", "said"), [
    ("users", [{"id": "12", "username": "someone", "name": "Some One", "created_at": "2010-01-01T00:00:00.000Z"}],
     "twarc2 users file"),
    ("lists", [{"id": "99", "name": "police accounts", "follower_count": 3, "private": False}], "lists file"),
    ("counts", [{"end": "2026-10-01T01:00:00.000Z", "start": "2026-10-01T00:00:00.000Z", "tweet_count": 7}],
     "twarc2 counts file"),
])
def test_a_file_without_posts_fails_saying_what_it_seems_to_be(kind: str, objects: list, said: str,
                                                                synced: Engine, matcher, tmp_path: Path) -> None:
    """Issue 14 point 6: users and lists were stored as posts with empty text; counts were rejected once per
    bucket as "tweet has no id"."""
    path = tmp_path / f"{kind}.jsonl"
    path.write_text("\n".join(json.dumps({"data": objects * 3, "meta": {}}) for _ in range(4)) + "\n")
    with pytest.raises(ArchiveError, match=said):
        import_file(synced, "x", path, matcher=matcher, keep_all=True)
    [row] = runs(synced)
    assert row.status == "failed" and said in row.error and row.notes["lines_without_posts"] == {kind: 4}
    with synced.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Post)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(RejectedPayload)).scalar() == 0


def test_a_file_of_which_no_line_is_json_fails_its_row(synced: Engine, matcher, tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("{this is not json\n{nor this\n")
    with pytest.raises(ArchiveError, match="no line holds x posts"):
        import_file(synced, "x", path, matcher=matcher)
    assert get_run(synced, runs(synced)[0].id)["status"] == "failed"


def test_zstandard_frames_one_after_another_are_read_whole(tmp_path: Path) -> None:
    """The frame-aware reader must not stop at the first frame (dumps are often concatenated)."""
    c = zstandard.ZstdCompressor()
    path = tmp_path / "two.zst"
    path.write_bytes(c.compress(b"one\n") + c.compress(b"two\n"))
    with archive.open_text(path) as fh:
        assert fh.read() == "one\ntwo\n"


# --- issue 14 point 6: later sightings and edit histories ---------------------------------------------


def x_tweet(tid: int, **extra: object) -> dict:
    return {"id": str(tid), "text": "Thanks NYPD", "author_id": "7", "created_at": "2026-10-01T12:00:00.000Z",
            "edit_history_tweet_ids": [str(tid)], **extra}


def test_a_poorer_later_sighting_never_erases_kind_references_or_raw(store: Engine) -> None:
    from trustwatch.collectors.x import normalize_x_page
    from trustwatch.models.store import write_page

    quote = x_tweet(BASE + 1, referenced_tweets=[{"type": "quoted", "id": str(BASE + 9)}], geo={"place_id": "p"})
    write_page(store, normalize_x_page({"data": [quote]}))
    sparse = {k: v for k, v in quote.items() if k not in ("referenced_tweets", "geo")}
    write_page(store, normalize_x_page({"data": [{**sparse, "public_metrics": {"like_count": 5}}]}))
    with store.connect() as conn:
        row = conn.execute(select(Post.__table__)).one()
    assert (row.kind, row.root_platform_id, row.like_count) == ("quote", str(BASE + 9), 5)
    assert row.raw["referenced_tweets"] == quote["referenced_tweets"] and row.raw["geo"] == {"place_id": "p"}
    assert row.raw["public_metrics"] == {"like_count": 5}


def test_references_to_a_later_version_resolve_to_the_stored_post(store: Engine) -> None:
    """A reply to version 2 of an edited post named an id the store never holds (it keeps the first)."""
    from trustwatch.collectors.x import normalize_x_page
    from trustwatch.models.store import write_page

    first = 1_850_000_000_000_000_000
    second = first + (60_000 << 22)  # one minute later, inside X's edit window
    edited = x_tweet(second, edit_history_tweet_ids=[str(first), str(second)])
    write_page(store, normalize_x_page({"data": [edited]}))
    reply = x_tweet(second + (120_000 << 22), referenced_tweets=[{"type": "replied_to", "id": str(second)}])
    quote = x_tweet(second + (180_000 << 22), referenced_tweets=[{"type": "quoted", "id": str(second)}])
    write_page(store, normalize_x_page({"data": [reply, quote]}))
    # and within one page, the edited post beside the reply to its later version
    other_first = first + (7_200_000 << 22)
    other_second = other_first + (30_000 << 22)
    write_page(store, normalize_x_page({"data": [
        x_tweet(other_second + (5_000 << 22), referenced_tweets=[{"type": "replied_to", "id": str(other_second)}]),
        x_tweet(other_second, edit_history_tweet_ids=[str(other_first), str(other_second)])]}))
    with store.connect() as conn:
        rows = {r.platform_post_id: (r.parent_platform_id, r.root_platform_id) for r in conn.execute(select(Post))}
    assert rows[reply["id"]][0] == str(first)
    assert rows[quote["id"]][1] == str(first)
    assert rows[str(other_second + (5_000 << 22))][0] == str(other_first)


def test_a_file_another_process_is_importing_is_left_to_it(synced: Engine, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 4 for imports: a concurrent import of the same file doubled the snapshots; the second one now
    leaves the file to the first (its lease), says so, and imports the other files."""
    from trustwatch.models import store

    from trustwatch import tasks

    (tmp_path / "a.jsonl").write_text(page_line(1) + "\n")
    (tmp_path / "b.jsonl").write_text(page_line(2) + "\n")
    digest = archive.fingerprint(tmp_path / "a.jsonl")
    store.open_run(synced, platform="x", query_key="import:x:matched", query_version=digest[:64],
                   query_text="a.jsonl", window_start=None, window_end=None, source="import",
                   holder="other-host:4242:abcd")
    monkeypatch.setattr(tasks, "engine", lambda: synced)
    results = {Path(r["file"]).name: r for r in tasks.import_archive("x", [str(tmp_path)], raise_on_failure=False)}
    assert results["b.jsonl"]["status"] == "success"
    assert results["a.jsonl"]["status"] == "failed" and "already running" in results["a.jsonl"]["error"]
    assert stored_ids(synced) == {str(BASE + 2)}
