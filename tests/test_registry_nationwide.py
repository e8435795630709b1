"""The nationwide registry (FBI CDE list merged with the curated entries): what an analyst checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from trustwatch.collectors.agencies import DEFAULT_REGISTRY_DIR, Matcher, Registry, RegistryError, load_registry
from trustwatch.collectors.agencies.naming import clean_name, is_police, match_terms, state_unit_force


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def matcher(registry: Registry) -> Matcher:
    return Matcher(registry)


def attributed(matcher: Matcher, text: str) -> set[str]:
    return {m.agency_slug for m in matcher.match(text)}


# ------------------------------------------------------------------------------------ naming rules


def test_names_become_terms_by_agency_type() -> None:
    assert match_terms("Clinton Police Department", "municipal")[:1] == ["Clinton Police Department"]
    assert {"Clinton Police", "Clinton PD"} <= set(match_terms("Clinton Police Department", "municipal"))
    assert {"Lee County Sheriff's Office", "Lee County Sheriff's Department", "Lee County Sheriff"} <= set(
        match_terms("Lee County Sheriff's Office", "sheriff"))
    assert "University of Arkansas Police" in match_terms("University of Arkansas", "campus")
    assert "Samford University Police" in match_terms("Samford University", "campus")
    assert "Samford University" not in match_terms("Samford University", "campus")  # the school, not its police
    assert "Navajo Nation Police" in match_terms("Navajo Nation", "tribal")
    # A town named like an everyday word keeps only its full name.
    assert match_terms("Normal Police Department", "municipal") == [
        "Normal Police Department", "Normal Police Dept"]


def test_fbi_names_are_cleaned() -> None:
    assert clean_name("University of Arkansas:", "University or College") == "University of Arkansas"
    assert clean_name("University of Alaska: Fairbanks", "University or College") == "University of Alaska Fairbanks"
    assert clean_name("Las Vegas Metropolitan Police Department Police Department", "City") == (
        "Las Vegas Metropolitan Police Department")
    assert clean_name("Concord", "City") == "Concord Police Department"


def test_non_police_rows_and_state_units_are_recognised() -> None:
    assert not is_police("Allegheny County District Attorney Criminal Investigation Division", "Other")
    assert not is_police("Trussville Fire Department Fire and Explosion Investigation Unit", "Other")
    assert not is_police("Central Alabama Drug Task Force", "Other")
    assert is_police("State Capitol Police", "Other State Agency")
    assert is_police("Clinton Police Department", "City")
    assert state_unit_force("State Police: Albany County") == "State Police"
    assert state_unit_force("Highway Patrol: Los Angeles County") == "Highway Patrol"
    assert state_unit_force("Arkansas State Police") is None


# ------------------------------------------------------------------------------------ the registry


def test_registry_holds_every_fbi_agency_merged_with_the_curated_ones_by_ori(registry: Registry) -> None:
    assert len(registry) >= 18_000
    nypd = registry.by_ori("NY0303000")
    assert nypd.slug == "nypd" and "NYPDnews" in nypd.x_handles  # curated terms stay
    assert nypd.agency_type == "City" and nypd.timezone == "America/New_York" and nypd.latitude is not None
    assert sum(e.ori == "NY0303000" for e in registry.entries) == 1  # merged, not doubled
    lapd = registry.by_slug("lapd")
    assert lapd.ori == "CA0194200" and lapd.timezone == "America/Los_Angeles" and lapd.county == "Los Angeles"
    clinton_ia = registry.by_slug("ia-clinton-police-department")
    assert clinton_ia.agency_type == "City" and clinton_ia.state == "IA" and clinton_ia.timezone == "America/Chicago"
    assert registry.by_slug("az-navajo-nation").timezone in ("America/Phoenix", "America/Denver")
    oris = [e.ori for e in registry.entries if e.ori]
    assert len(oris) == len(set(oris))


def test_every_curated_entry_has_an_ori_or_says_why() -> None:
    data = yaml.safe_load((DEFAULT_REGISTRY_DIR / "agencies.yaml").read_text(encoding="utf-8"))["agencies"]
    missing = [e["slug"] for e in data if not e.get("ori") and not str(e.get("ori_missing") or "").strip()]
    assert missing == []
    assert sum(bool(e.get("ori")) for e in data) >= 80


def test_state_police_units_are_grouped_under_the_parent_people_name(registry: Registry, matcher: Matcher) -> None:
    units = [e for e in registry.entries if e.parent == "new-york-state-police"]
    assert len(units) >= 50 and all(e.ori and not e.matched for e in units)
    chp_units = [e for e in registry.entries if e.parent == "california-highway-patrol"]
    assert len(chp_units) >= 50
    assert attributed(matcher, "New York State Police closed the Thruway") == {"new-york-state-police"}
    assert attributed(matcher, "State Police: Albany County") == set()


def test_non_police_rows_are_known_but_never_attributed(registry: Registry, matcher: Matcher) -> None:
    task_force = next(e for e in registry.entries if e.name == "Central Alabama Drug Task Force")
    assert task_force.ori and not task_force.matched
    assert attributed(matcher, "the Central Alabama Drug Task Force seized a car") == set()


# ------------------------------------------------------------------------------------ labeled set

NATIONWIDE_CASES = Path(__file__).parent / "data" / "matching_cases_nationwide.yaml"


def test_nationwide_labeled_set_precision_and_recall(matcher: Matcher, registry: Registry) -> None:
    cases = yaml.safe_load(NATIONWIDE_CASES.read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 400
    known = {e.slug for e in registry.entries}
    generated = {e.slug for e in registry.entries if e.generated}
    # The set is about the nationwide registry: most labels name FBI-listed agencies, and a good share
    # of posts name shared names or places that are not police.
    labeled = [s for c in cases for s in c["expect"]]
    assert sum(s in generated for s in labeled) >= 250
    assert sum(not c["expect"] for c in cases) >= 80
    tp = fp = fn = 0
    misses = []
    for case in cases:
        expected = set(case["expect"])
        assert expected <= known, f"unknown slug in case {case['text']!r}: {expected - known}"
        got = {m.agency_slug for m in matcher.match(case["text"], case.get("community"))}
        tp += len(got & expected)
        fp += len(got - expected)
        fn += len(expected - got)
        if got != expected:
            misses.append(f"{case['text']!r}: expected {sorted(expected)}, got {sorted(got)}")
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    print(f"\n{len(cases)} cases, precision {precision:.3f}, recall {recall:.3f}")
    for miss in misses:
        print("  miss:", miss)
    assert precision >= 0.97, "\n".join(misses)
    assert recall >= 0.90, "\n".join(misses)


# ------------------------------------------------------------------------------------ shared names


def test_a_shared_name_attributes_only_when_the_post_settles_it(matcher: Matcher) -> None:
    text = "Clinton PD arrested two men downtown, Clinton Iowa"
    assert attributed(matcher, text) == {"ia-clinton-police-department"}
    unsettled: list = []
    assert matcher.match("Clinton PD arrested two men downtown", unsettled=unsettled) == []
    assert len(unsettled) == 1
    assert unsettled[0].term == "Clinton PD" and len(unsettled[0].candidates) >= 10
    assert "ia-clinton-police-department" in unsettled[0].candidates
    assert attributed(matcher, "Washington County Sheriff's Office deputies in Oregon") == {
        "or-washington-county-sheriffs-office"}
    assert attributed(matcher, "Jackson County fair opens Friday on Clinton Street") == set()


def test_a_big_city_keeps_its_own_name_unless_the_post_names_another_state(matcher: Matcher) -> None:
    assert attributed(matcher, "Houston Police say the suspect fled") == {"houston-pd"}
    assert attributed(matcher, "Houston Police Department in Mississippi hired a chief") == {
        "ms-houston-police-department"}


def test_cli_match_reports_the_ambiguity(tmp_path: Path) -> None:
    def run(text: str) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "trustwatch.cli", "agencies", "match", text],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    settled = run("Clinton PD arrested two men downtown, Clinton Iowa")
    assert [m["agency"] for m in settled] == ["ia-clinton-police-department"]
    unsettled = run("Clinton PD arrested two men downtown")
    assert [m["agency"] for m in unsettled] == [None]
    assert unsettled[0]["kind"] == "ambiguous" and "ia-clinton-police-department" in unsettled[0]["candidates"]


# ------------------------------------------------------------------------------------ tracked and known


def test_picks_by_state_kind_slug_and_ori(registry: Registry) -> None:
    tx_sheriffs = registry.pick(states=["TX"], kinds=["sheriff"])
    assert len(tx_sheriffs) >= 200 and {e.state for e in tx_sheriffs} == {"TX"}
    assert {e.kind for e in tx_sheriffs} == {"sheriff"}
    assert "harris-county-sheriff" in {e.slug for e in tx_sheriffs}
    assert [e.slug for e in registry.pick(oris=["IA0230100"])] == [registry.by_ori("IA0230100").slug]
    assert [e.slug for e in registry.pick(slugs=["nypd"])] == ["nypd"]
    with pytest.raises(RegistryError, match="unknown ORI"):
        registry.pick(oris=["ZZ9999999"])
    # Only tracked agencies get queries; all 18,000 are matched.
    assert len(registry.tracked()) < 200


def test_the_trigger_forms_state_picker_names_agencies_and_refuses_unknown_states() -> None:
    from trustwatch import tasks

    texas_sheriffs = tasks.pick_agencies(["TX"], ["sheriff"])
    assert len(texas_sheriffs) >= 200 and "harris-county-sheriff" in texas_sheriffs
    import datetime as dt

    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    request = tasks.validate_request("x", end - dt.timedelta(hours=2), end, texas_sheriffs[:5])
    assert request["agencies"] == texas_sheriffs[:5]
    with pytest.raises(tasks.RequestError, match="ZZ"):
        tasks.pick_agencies(["ZZ"])


def test_a_registry_file_tracks_more_agencies(tmp_path: Path) -> None:
    for path in DEFAULT_REGISTRY_DIR.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    (tmp_path / "zz_track.yaml").write_text("track:\n  states: [IA]\n  kinds: [sheriff]\n  oris: [NY0140100]\n")
    reg = load_registry(tmp_path)
    tracked = {e.slug for e in reg.tracked()}
    assert "ia-polk-county-sheriffs-office" in tracked and "buffalo-pd" in tracked
    assert "ia-clinton-police-department" not in tracked  # Iowa AND sheriff
    (tmp_path / "zz_track.yaml").write_text("track:\n  counties: [Polk]\n")
    with pytest.raises(RegistryError, match="'track' must be"):
        load_registry(tmp_path)


# ------------------------------------------------------------------------------------ the store


def check_store_carries_the_registry(engine, registry: Registry) -> None:
    from sqlalchemy import text
    from trustwatch.models.store import sync_agencies

    from trustwatch import migrate

    migrate.upgrade(engine)
    result = sync_agencies(engine, registry.entries)
    assert result["agencies"] >= 18_000
    with engine.connect() as conn:
        row = conn.execute(text("SELECT ori, agency_type, county, timezone, tracked, matched FROM agencies "
                                "WHERE slug = 'lapd'")).one()
        assert tuple(row) == ("CA0194200", "City", "Los Angeles", "America/Los_Angeles", True, True)
        tx_sheriffs = conn.execute(text(
            "SELECT count(*) FROM agencies WHERE state = 'TX' AND kind = 'sheriff' AND ori IS NOT NULL")).scalar_one()
        assert tx_sheriffs >= 200
        assert conn.execute(text("SELECT count(*) FROM agencies WHERE NOT matched")).scalar_one() > 1000
        # The trend views carry what a filter on "county sheriffs in Texas" and a join to FBI data need.
        for view in ("agency_daily_trend", "agency_weekly_trend"):
            cols = conn.execute(text(f"SELECT * FROM {view} WHERE 1 = 0")).keys()
            assert {"ori", "state", "agency_kind", "agency_type", "county", "timezone"} <= set(cols)
    assert sync_agencies(engine, registry.entries)["changed"] == 0  # idempotent


def test_sqlite_store_carries_the_registry(tmp_path: Path, registry: Registry) -> None:
    from trustwatch.models.db import make_engine

    check_store_carries_the_registry(make_engine(f"sqlite:///{tmp_path / 'r.db'}"), registry)


@pytest.mark.postgres
def test_postgres_store_carries_the_registry(pg_server, registry: Registry) -> None:
    from trustwatch.models.db import make_engine

    engine = make_engine(pg_server.create("tw_registry16"))
    check_store_carries_the_registry(engine, registry)
    engine.dispose()


def test_queries_x_estimates_monthly_reads_of_the_tracked_set(tmp_path: Path, monkeypatch, registry: Registry) -> None:
    import datetime as dt

    from trustwatch.models.db import make_engine
    from trustwatch.models.store import sync_agencies, write_page

    from trustwatch import migrate, tasks
    from trustwatch.records import AuthorRecord, MentionRecord, Page, PostRecord

    url = f"sqlite:///{tmp_path / 'est.db'}"
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    sync_agencies(engine, registry.entries)
    newest = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    page = Page()
    # 56 X posts about tracked agencies in the last 28 days, 10 about a known-only town, 5 older ones.
    for i in range(71):
        slug = "nypd" if i < 56 else "ia-clinton-police-department" if i < 66 else "lapd"
        when = newest - dt.timedelta(hours=12 * (i % 56)) if i < 66 else newest - dt.timedelta(days=40 + i)
        pid = str(5000 + i)  # an X id: digits
        page.posts.append(PostRecord(platform="x", platform_post_id=pid, kind="post", created_at=when,
                                     text="police", author_platform_id="u1"))
        page.mentions.append(MentionRecord("x", pid, slug, "x", "name"))
    page.authors.append(AuthorRecord("x", "u1", username="u1"))
    write_page(engine, page)
    estimate = tasks.estimate_monthly_reads("x")
    assert estimate["agencies"] == len(registry.tracked())
    assert estimate["measured_posts"] == 56 and estimate["monthly_reads"] == 60  # 56 posts in 28 days
    assert estimate["agencies_with_history"] == 1
    assert tasks.estimate_monthly_reads("x", ["ia-clinton-police-department"])["monthly_reads"] == round(10 * 30 / 28)
    engine.dispose()


def test_monthly_read_estimate_says_why_the_store_cannot_answer_and_lets_bugs_through(
        tmp_path: Path, monkeypatch, registry: Registry) -> None:
    """An unmigrated store gives the one-line advice in the estimate (the queries still print); an error that
    is not about the store is a bug and must not be dressed up as 'store not available'."""
    from trustwatch import tasks

    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    estimate = tasks.estimate_monthly_reads("x")
    assert estimate["monthly_reads"] is None
    assert "store not available" in estimate["note"] and "trustwatch db upgrade" in estimate["note"]

    def broken(check: bool = True) -> None:
        raise TypeError("a bug in the estimate")

    monkeypatch.setattr(tasks, "engine", broken)
    with pytest.raises(TypeError, match="a bug in the estimate"):
        tasks.estimate_monthly_reads("x")
