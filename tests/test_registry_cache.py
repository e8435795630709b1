"""The registry is parsed and compared with the store once per change, not once per Airflow task (issue 18).

Every collect task is a fresh process.  ``sync_registry`` skips the comparison when the store recorded the
same registry digest at its last sync, and the parsed registry and matcher come from an on-disk cache keyed
by the same digest.  These tests check what an operator relies on: an edited registry reaches the store and
the matcher at the next run, and nothing else changes what is synced or matched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func as sa_func
from sqlalchemy import select
from trustwatch.collectors.agencies import Matcher, load_registry
from trustwatch.collectors.agencies import cache as registry_cache
from trustwatch.models import store as store_module
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Agency

from trustwatch import migrate, tasks
from trustwatch.settings import resource_dir

TEXTS = [
    "NYPD officers at the Barclays Center tonight",
    "Seattle police said the road is closed",
    "watching NYPD Blue reruns",
    "the sheriff's office in Orange County, Florida",
    "#LAPD and @NYPDnews both posted",
]


@pytest.fixture
def agencies_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry folder of the operator's own: the curated file only (fast to parse)."""
    folder = tmp_path / "agencies"
    folder.mkdir()
    shutil.copy(resource_dir("agencies") / "agencies.yaml", folder / "agencies.yaml")
    monkeypatch.setenv("TRUSTWATCH_AGENCIES_DIR", str(folder))
    return folder


@pytest.fixture
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRUSTWATCH_CACHE_DIR", str(folder))
    return folder


def new_process() -> None:
    """What a new Airflow task process starts with: nothing parsed in memory."""
    tasks._registry_cached.cache_clear()
    tasks._matcher_cached.cache_clear()


def _edit(folder: Path, old: str, new: str) -> None:
    path = folder / "agencies.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated store the tasks reach through TRUSTWATCH_DATABASE_URL, on both backends."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_server").create("tw_regsync")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    return url


def _stored(url: str) -> dict[str, tuple[bool, list[str]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {r.slug: (r.active, list(r.aliases)) for r in conn.execute(
                select(Agency.slug, Agency.active, Agency.aliases))}
    finally:
        engine.dispose()


def test_an_unchanged_registry_is_not_compared_again_and_an_edited_one_is_synced(
        store_url, agencies_dir, cache_folder, monkeypatch):
    first = tasks.sync_registry()
    synced = _stored(store_url)
    assert first["unchanged"] is False and first["changed"] == first["agencies"] == len(synced) > 0

    # the next run's sync_registry (a new process): same files, so the registry is not even parsed
    new_process()

    def no_parse(*args, **kwargs):
        raise AssertionError("the registry was parsed although it did not change")

    with monkeypatch.context() as patched:
        patched.setattr(registry_cache, "load_registry", no_parse)
        patched.setattr(store_module, "sync_agencies", no_parse)
        again = tasks.sync_registry()
    assert {k: again[k] for k in ("agencies", "changed", "deactivated", "unchanged")} == {
        "agencies": first["agencies"], "changed": 0, "deactivated": 0, "unchanged": True}
    assert _stored(store_url) == synced

    # the operator edits the registry: a new alias for one agency, another agency removed
    _edit(agencies_dir, "aliases: [NYPD, ", "aliases: [NYPD, The Finest, ")
    text = (agencies_dir / "agencies.yaml").read_text(encoding="utf-8")
    start = text.index("\n  - slug: ", text.index("  - slug: nypd\n")) + 1  # the entry after the NYPD's
    removed = text[start:text.index("\n", start)].split(": ")[1]
    end = text.index("\n  - slug: ", start) + 1
    (agencies_dir / "agencies.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    new_process()
    edited = tasks.sync_registry()
    after = _stored(store_url)
    assert edited["unchanged"] is False and edited["deactivated"] == 1
    assert "The Finest" in after["nypd"][1]
    assert after[removed][0] is False, "an agency removed from the registry is deactivated, not deleted"
    new_process()
    assert tasks.sync_registry()["unchanged"] is True

    # entries synced by something else (a script, an older trustwatch) record no digest: the next run compares
    engine = make_engine(store_url)
    try:
        store_module.sync_agencies(engine, load_registry(agencies_dir).entries[:3])
    finally:
        engine.dispose()
    new_process()
    repaired = tasks.sync_registry()
    assert repaired["unchanged"] is False and _stored(store_url) == after
    # and a forced sync compares even when nothing changed (after a hand edit of the agencies table)
    assert tasks.sync_registry(recheck=True)["unchanged"] is False


def test_the_cached_registry_and_matcher_equal_fresh_ones_and_follow_edits(agencies_dir, cache_folder):
    fresh = Matcher(load_registry(agencies_dir))
    new_process()
    built = tasks.matcher()  # parses and writes the cache
    new_process()
    loaded = tasks.matcher()  # a later task: read from the cache
    assert sorted(p.name.split("-")[0] for p in cache_folder.iterdir()) == ["matcher", "registry"]
    assert loaded is not built and loaded.registry.entries == fresh.registry.entries == tasks.registry().entries
    for text in TEXTS:
        assert loaded.match(text) == fresh.match(text) == built.match(text), text
        assert loaded.match(text, community="nyc") == fresh.match(text, community="nyc"), text

    _edit(agencies_dir, "aliases: [NYPD, ", "aliases: [NYPD, The Finest, ")
    new_process()
    assert [m.agency_slug for m in tasks.matcher().match("The Finest were out in force")] == ["nypd"]
    assert "The Finest" in tasks.registry().by_slug("nypd").aliases
    assert len(list(cache_folder.glob("matcher-*.pickle"))) == 1, "the stale matcher is removed"


def test_a_damaged_or_shared_cache_is_never_trusted(agencies_dir, cache_folder):
    expected = load_registry(agencies_dir).entries
    assert registry_cache.load_registry_cached(agencies_dir).entries == expected
    (cached_file,) = cache_folder.glob("registry-*.pickle")
    cached_file.write_bytes(b"not a pickle")
    assert registry_cache.load_registry_cached(agencies_dir).entries == expected  # rebuilt and rewritten
    assert cached_file.read_bytes() != b"not a pickle"

    os.chmod(cache_folder, 0o777)  # others could plant a pickle here: parse instead, write nothing
    cached_file.write_bytes(b"planted")
    assert registry_cache.load_registry_cached(agencies_dir).entries == expected
    assert cached_file.read_bytes() == b"planted"
    os.chmod(cache_folder, 0o700)


def test_a_task_process_with_nothing_changed_imports_no_alembic_and_parses_no_registry(
        tmp_path, agencies_dir, cache_folder, monkeypatch):
    """What each collect task's process pays for the schema check and the registry step once warm."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    env = {**os.environ, "TRUSTWATCH_DATABASE_URL": url}
    env.pop("AIRFLOW_CONN_TRUSTWATCH_DB", None)
    probe = ("import sys; from trustwatch import tasks; import trustwatch.collectors.agencies.cache as c; "
             "parsed = []; real = c.load_registry; "
             "c.load_registry = lambda *a: parsed.append(1) or real(*a); "
             "result = tasks.sync_registry(); print(result['unchanged'], 'alembic' in sys.modules, bool(parsed))")

    def task_process() -> str:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                              cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.split()

    assert task_process() == ["False", "True", "True"]  # the first run: migrations read, registry parsed
    assert task_process() == ["True", "False", "False"]  # every later one: neither
    assert migrate.head() == migrate._head_uncached()


def test_two_runs_syncing_a_new_store_together_both_succeed_and_one_writes(pg_server, registry):
    """Two collect runs started together on a new PostgreSQL store both sync the nationwide registry first;
    both wrote every row, and the second could collide with the first's uncommitted inserts on the ``ori``
    index and die with an IntegrityError traceback (CI, test_two_runs_of_the_same_window_read_it_once).  Now
    it waits for the first, finds its digest and writes nothing."""
    import threading

    url = pg_server.create("tw_regrace")
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        digest = tasks.registry_sync_digest()
        barrier = threading.Barrier(2)
        results: list[dict] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait()
                results.append(store_module.sync_agencies(engine, registry.entries, digest=digest,
                                                          if_changed=True))
            except BaseException as exc:  # reported below, in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        assert sorted(r["changed"] for r in results) == [0, len(registry.entries)]
        assert [r.get("unchanged", False) for r in results if r["changed"] == 0] == [True]
        with engine.connect() as conn:
            assert conn.execute(select(sa_func.count()).select_from(Agency)).scalar() == len(registry.entries)
    finally:
        engine.dispose()
