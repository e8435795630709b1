"""Agency registry and mention matcher: what an analyst relies on when reading attributions."""

from __future__ import annotations

import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from trustwatch.collectors.agencies import (
    DEFAULT_REGISTRY_DIR,
    AgencyEntry,
    Matcher,
    Registry,
    RegistryError,
    load_registry,
    normalize_text,
)

CASES_FILE = Path(__file__).parent / "data" / "matching_cases.yaml"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def matcher(registry: Registry) -> Matcher:
    return Matcher(registry)


def slugs(matcher: Matcher, text: str, community: str | None = None) -> set[str]:
    return {m.agency_slug for m in matcher.match(text, community)}


# ------------------------------------------------------------------------------------ registry


def test_registry_has_the_agencies_the_issue_asks_for(registry: Registry) -> None:
    curated = [e for e in registry.entries if not e.generated]
    kinds = Counter(e.kind for e in curated)
    assert len(curated) >= 75
    assert kinds["municipal"] >= 50
    assert kinds["sheriff"] >= 10
    assert kinds["state"] >= 5
    assert kinds["federal"] >= 5
    assert kinds["transit"] + kinds["campus"] >= 3
    nypd = registry.by_slug("nypd")
    assert nypd.state == "NY" and nypd.jurisdiction == "New York City"
    assert "NYPDnews" in nypd.x_handles and "nyc" in nypd.subreddits
    assert registry.by_slug("fbi").state is None
    assert all(e.source_file == "agencies.yaml" for e in curated)
    assert DEFAULT_REGISTRY_DIR.name == "agencies"


def test_unknown_slug_is_named(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="no-such-agency"):
        registry.by_slug("no-such-agency")


def _registry_dir(tmp_path: Path, extra: str | None = None, name: str = "zz_local.yaml") -> Path:
    folder = tmp_path / "agencies"
    folder.mkdir()
    shutil.copy(DEFAULT_REGISTRY_DIR / "agencies.yaml", folder / "agencies.yaml")
    if extra is not None:
        (folder / name).write_text(extra, encoding="utf-8")
    return folder


def test_extension_file_adds_an_agency_without_code_change(tmp_path: Path) -> None:
    folder = _registry_dir(
        tmp_path,
        """
agencies:
  - slug: gainesville-pd
    name: Gainesville Police Department
    kind: municipal
    jurisdiction: Gainesville
    state: FL
    aliases: [Gainesville Police, GPD Gainesville]
    x_handles: ["@GainesvillePD"]
    subreddits: [r/GNV]
""",
    )
    reg = load_registry(folder)
    entry = reg.by_slug("gainesville-pd")
    assert entry.source_file == "zz_local.yaml"
    assert entry.x_handles == ("GainesvillePD",) and entry.subreddits == ("GNV",)
    found = Matcher(reg).match("Gainesville Police and @GainesvillePD responded")
    assert {(m.agency_slug, m.kind) for m in found} == {("gainesville-pd", "alias"), ("gainesville-pd", "handle")}


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ("kind: municipal\n    jurisdiction: X\n    state: TX", "name", "required"),
        ("name: X PD\n    kind: township\n    jurisdiction: X\n    state: TX", "kind", "township"),
        ("name: X PD\n    kind: municipal\n    jurisdiction: X\n    state: Texas", "state", "Texas"),
        ("name: X PD\n    kind: federal\n    state: TX", "state", "federal"),
        ("name: X PD\n    kind: municipal\n    state: TX", "jurisdiction", "required"),
        ("name: X PD\n    kind: municipal\n    jurisdiction: X\n    state: TX\n    alias: [XPD]", "alias",
         "unknown field"),
        ("name: X PD\n    kind: municipal\n    jurisdiction: X\n    state: TX\n    x_handles: [way_too_long_handle_1]",
         "x_handles", "way_too_long_handle_1"),
        ("name: X PD\n    kind: municipal\n    jurisdiction: X\n    state: TX\n    aliases: [cops]", "aliases",
         "generic police word"),
        ("name: X PD\n    kind: municipal\n    jurisdiction: X\n    state: TX\n    aliases: XPD\n    active: maybe",
         "active", "maybe"),
    ],
)
def test_broken_entry_names_file_entry_and_field(tmp_path: Path, entry: str, field: str, fragment: str) -> None:
    folder = _registry_dir(tmp_path, f"agencies:\n  - slug: broken-pd\n    {entry}\n", name="broken.yaml")
    with pytest.raises(RegistryError) as info:
        load_registry(folder)
    message = str(info.value)
    assert "broken.yaml" in message
    assert "entry 'broken-pd'" in message
    assert f"field '{field}'" in message
    assert fragment in message


def test_entry_without_slug_is_named_by_position(tmp_path: Path) -> None:
    folder = _registry_dir(tmp_path, "agencies:\n  - slug: ok-pd\n    name: Ok PD\n    kind: campus\n    state: TX\n"
                                    "  - name: No Slug PD\n    kind: campus\n    state: TX\n", name="x.yaml")
    with pytest.raises(RegistryError, match=r"x\.yaml: entry #2: field 'slug'"):
        load_registry(folder)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    folder = _registry_dir(tmp_path, "agencies:\n  - slug: a\n    name: [unclosed\n", name="bad.yaml")
    with pytest.raises(RegistryError, match=r"bad\.yaml \(line \d+, column \d+\): not valid YAML"):
        load_registry(folder)


def test_file_without_agencies_list_is_refused(tmp_path: Path) -> None:
    folder = _registry_dir(tmp_path, "- slug: a\n", name="flat.yaml")
    with pytest.raises(RegistryError, match=r"flat\.yaml: expected a mapping with one key 'agencies'"):
        load_registry(folder)


def test_alias_that_would_name_two_agencies_is_reported_with_both(tmp_path: Path) -> None:
    folder = _registry_dir(
        tmp_path,
        "agencies:\n  - slug: fake-nypd\n    name: Fake Department\n    kind: campus\n    state: NY\n"
        "    aliases: [nypd]\n",
    )
    with pytest.raises(RegistryError) as info:
        load_registry(folder)
    message = str(info.value)
    assert "zz_local.yaml: entry 'fake-nypd': field 'aliases'" in message
    assert "'nypd'" in message and "agencies.yaml" in message and "ambiguous" in message


def test_shared_acronym_is_fine_when_both_mark_it_ambiguous(tmp_path: Path) -> None:
    folder = _registry_dir(
        tmp_path,
        "agencies:\n  - slug: anchorage-pd\n    name: Anchorage Police Department\n    kind: municipal\n"
        "    jurisdiction: Anchorage\n    state: AK\n    ambiguous: [APD]\n",
    )
    reg = load_registry(folder)
    m = Matcher(reg)
    assert slugs(m, "APD responded in Anchorage") == {"anchorage-pd"}
    assert slugs(m, "APD responded in Austin") == {"austin-pd"}
    assert slugs(m, "APD responded") == set()


def test_duplicate_slug_handle_and_hashtag_are_reported(tmp_path: Path) -> None:
    folder = _registry_dir(
        tmp_path,
        "agencies:\n  - slug: nypd\n    name: Another NYPD\n    kind: campus\n    state: NY\n"
        "  - slug: copycat\n    name: Copycat Police\n    kind: campus\n    state: NY\n"
        "    x_handles: [nypdnews]\n    hashtags: [LAPD]\n",
    )
    with pytest.raises(RegistryError) as info:
        load_registry(folder)
    problems = info.value.problems
    assert any("entry 'nypd': field 'slug': duplicate slug" in p for p in problems)
    assert any("entry 'copycat': field 'x_handles': @nypdnews" in p and "'nypd'" in p for p in problems)
    assert any("entry 'copycat': field 'hashtags': #LAPD" in p and "'lapd'" in p for p in problems)


def test_one_subreddit_word_meaning_two_agencies_is_reported(tmp_path: Path) -> None:
    folder = _registry_dir(
        tmp_path,
        "agencies:\n  - slug: nyc-campus\n    name: NYC Campus Police\n    kind: campus\n    state: NY\n"
        "    subreddits: [nyc]\n",
    )
    with pytest.raises(RegistryError, match=r"in r/nyc the word 'police' would mean both 'nypd' and 'nyc-campus'"):
        load_registry(folder)


def test_inactive_agency_is_kept_but_not_matched(registry: Registry) -> None:
    entries = [
        AgencyEntry(**{**e.__dict__, "active": False}) if e.slug == "lapd" else e for e in registry.entries
    ]
    reg = Registry(entries)
    assert reg.by_slug("lapd").active is False
    assert "lapd" not in {e.slug for e in reg.active()}
    assert slugs(Matcher(reg), "LAPD and NYPD") == {"nypd"}


# ------------------------------------------------------------------------------------ labeled set


def test_labeled_set_precision_and_recall(matcher: Matcher, registry: Registry) -> None:
    cases = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 250
    known = {e.slug for e in registry.entries}
    tp = fp = fn = 0
    misses = []
    for case in cases:
        expected = set(case["expect"])
        assert expected <= known, f"unknown slug in case {case['text']!r}: {expected - known}"
        got = slugs(matcher, case["text"], case.get("community"))
        tp += len(got & expected)
        fp += len(got - expected)
        fn += len(expected - got)
        if got != expected:
            misses.append(
                f"{case['text']!r} community={case.get('community')}: expected {sorted(expected)}, got {sorted(got)}"
            )
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    print(f"\n{len(cases)} cases, precision {precision:.3f}, recall {recall:.3f}")
    for miss in misses:
        print("  miss:", miss)
    assert precision >= 0.97, "\n".join(misses)
    assert recall >= 0.93, "\n".join(misses)


# ------------------------------------------------------------------------------------ matcher behaviour


def test_match_reports_term_kind_and_original_offsets(matcher: Matcher) -> None:
    text = "🚨 Ｔｈｅ\nNYPD’s officers & @NYPDnews #NYPD"
    found = matcher.match(text)
    assert [(m.agency_slug, m.kind, m.term, text[m.start:m.end]) for m in found] == [
        ("nypd", "alias", "NYPD", "NYPD"),
        ("nypd", "handle", "@NYPDnews", "@NYPDnews"),
        ("nypd", "hashtag", "#NYPD", "#NYPD"),
    ]
    assert found[0].to_dict() == {"agency": "nypd", "term": "NYPD", "kind": "alias",
                                  "start": found[0].start, "end": found[0].end}


def test_offsets_cover_folded_characters(matcher: Matcher) -> None:
    text = "Ｌ.Ａ.Ｐ.Ｄ.  and ﬁve… of the New York City\nPolice Department"
    found = matcher.match(text)
    # Punctuation at the edge of a term is not part of the match: "L.A.P.D" without the last dot.
    assert [(m.agency_slug, m.kind, text[m.start:m.end]) for m in found] == [
        ("lapd", "alias", "Ｌ.Ａ.Ｐ.Ｄ"),
        ("nypd", "name", "New York City\nPolice Department"),
    ]
    # A blank line ends a phrase: the two halves are not one name.
    assert matcher.match("New York City\n\nPolice Department") == []


def test_handle_counts_only_whole(matcher: Matcher) -> None:
    assert slugs(matcher, "@NYPDnews") == {"nypd"}
    assert slugs(matcher, "@NYPDnews2 and @NYPDnews_fan") == set()
    assert slugs(matcher, "mail press@NYPDnews.example") == set()
    assert slugs(matcher, "https://x.com/NYPDnews/status/1") == set()


def test_hashtag_with_a_suffix_is_another_hashtag(matcher: Matcher) -> None:
    assert slugs(matcher, "#NYPD") == {"nypd"}
    assert slugs(matcher, "#NYPDBlue") == set()


def test_ambiguous_acronym_needs_context(matcher: Matcher) -> None:
    assert slugs(matcher, "APD made an arrest") == set()
    assert slugs(matcher, "APD made an arrest in Atlanta") == {"atlanta-pd"}
    assert slugs(matcher, "APD made an arrest", community="r/atlanta") == {"atlanta-pd"}
    assert slugs(matcher, "APD made an arrest", community="ATLANTA") == {"atlanta-pd"}
    assert slugs(matcher, "@Austin_Police APD made an arrest") == {"austin-pd"}
    assert slugs(matcher, "APD made an arrest in Texas") == set()  # Austin or Arlington
    assert slugs(matcher, "MPD made an arrest in Wisconsin") == {"milwaukee-pd"}


def test_generic_words_alone_attribute_nothing(matcher: Matcher) -> None:
    for text in ("police", "the cops", "sheriff's deputies", "PD", "state troopers", "federal agents"):
        assert matcher.match(text) == []


def test_community_needs_a_police_word(matcher: Matcher) -> None:
    found = matcher.match("so many cops in Times Square", community="r/nyc")
    assert [(m.agency_slug, m.kind, m.term, m.start, m.end) for m in found] == [
        ("nypd", "community", "r/nyc", 8, 12)
    ]
    assert matcher.match("best bagel in Times Square?", community="nyc") == []
    assert matcher.match("cops everywhere", community="r/ProtectAndServe") == []


def test_exact_case_alias(matcher: Matcher) -> None:
    assert slugs(matcher, "ICE detained him") == {"ice"}
    assert slugs(matcher, "ice on the road") == set()
    assert slugs(matcher, "ICE COLD DRINKS HERE") == set()
    assert slugs(matcher, "La police est arrivée") == set()
    assert slugs(matcher, "LA police chase") == {"lapd"}


def test_not_terms_and_neighbouring_cities(matcher: Matcher) -> None:
    assert slugs(matcher, "NYPD Blue reruns") == set()
    # North Miami has its own police (in the FBI registry): never the City of Miami's.
    assert slugs(matcher, "North Miami Police Department") == {"fl-north-miami-police-department"}
    assert slugs(matcher, "Miami Police Department") == {"miami-pd"}


def test_empty_text(matcher: Matcher) -> None:
    assert matcher.match("") == []
    assert matcher.match("", community="nyc") == []


_FILLER = st.lists(
    st.sampled_from([*" \n\t\u00a0\u3000\u2028.,!?()'\"-", "é", "ß", "ﬁ", "🚓", "Ｘ", "e\u0301", "警", "…", "İ", "’"]),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(before=_FILLER, after=_FILLER,
       term=st.sampled_from(["NYPD", "Chicago Police Department", "@LAPDHQ", "#SFPD", "Texas DPS"]))
def test_offsets_always_point_at_the_term(before: str, after: str, term: str) -> None:
    text = f"{before} {term} {after}"
    found = _MATCHER.match(text)
    assert found, text
    for m in found:
        written = text[m.start:m.end]
        assert normalize_text(written)[0].strip() == normalize_text(m.term)[0], (text, m)


_ANY_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*" \n\t\u00a0\u3000\u2028.,!?()'\"-@#_", "é", "É", "ß", "ﬁ", "🚓", "Ｘ", "＠", "＃", "５",
                         "e\u0301", "警", "…", "İ", "’", "“", "—", "ς", "Σ", "\u200b", "\ufeff", "N", "y", "7"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(text=_ANY_TEXT)
def test_the_quick_scan_equals_the_full_normalization(text: str) -> None:
    """The matcher scans most posts without normalizing them first: wherever it does, the scan form must be the
    one of the fully normalized text, character for character (the offsets depend on it)."""
    from trustwatch.collectors.agencies import _quick_scan, _scan_form

    quick = _quick_scan(text)
    if quick is not None:
        assert quick == _scan_form(normalize_text(text)[0])


def test_the_quick_scan_covers_emoji_quotes_and_full_width_text() -> None:
    """Not vacuous: the usual non-ASCII of posts takes the quick path; Greek, CJK and "ß" do not."""
    from trustwatch.collectors.agencies import _quick_scan

    assert _quick_scan("NYPD 🚓 said “no” — ＮＹＰＤ＠x") == " nypd   said  no    nypd@x "
    assert _quick_scan("Café de la Policía") == " café de la policía "
    assert _quick_scan("Straße, σ, 警察") is None


def test_normalization_is_nfkc_casefold() -> None:
    raw = "Ｓｔｒａßｅ ﬁne\u00a0 Ｘ’s"
    norm, omap = normalize_text(raw)
    assert norm == unicodedata.normalize("NFKC", raw).casefold().replace("’", "'") == "strasse fine  x's"
    assert omap is not None and omap.span(0, 7) == (0, 6)  # "strasse" covers "Ｓｔｒａßｅ"
    assert normalize_text("Ｘ’s café")[1] is None  # one-for-one folds need no map


_MATCHER = Matcher(load_registry())
