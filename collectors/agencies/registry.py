"""The agency registry: entries, validation and loading from the YAML files under ``agencies/``.

Loading refuses entries that would attribute one term to two agencies, so an attribution error is a
load error the editor sees, not a silent trend shift.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from trustwatch.collectors.agencies.text import match_key, normalize_term

from trustwatch.settings import resource_dir

DEFAULT_REGISTRY_DIR: Path = resource_dir("agencies")

#: ``tribal``: tribal police; ``special``: the FBI's "Other" agencies (airports, railways, parks, capitol police).
KINDS: tuple[str, ...] = ("municipal", "sheriff", "state", "federal", "transit", "campus", "tribal", "special")

US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands",
}

#: The most common timezone per state: for agencies without coordinates (and curated ones without an ORI).
STATE_TIMEZONES: dict[str, str] = {
    "AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": "America/Chicago",
    "CA": "America/Los_Angeles", "CO": "America/Denver", "CT": "America/New_York", "DE": "America/New_York",
    "DC": "America/New_York", "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
    "ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis",
    "IA": "America/Chicago", "KS": "America/Chicago", "KY": "America/New_York", "LA": "America/Chicago",
    "ME": "America/New_York", "MD": "America/New_York", "MA": "America/New_York", "MI": "America/Detroit",
    "MN": "America/Chicago", "MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver",
    "NE": "America/Chicago", "NV": "America/Los_Angeles", "NH": "America/New_York", "NJ": "America/New_York",
    "NM": "America/Denver", "NY": "America/New_York", "NC": "America/New_York", "ND": "America/Chicago",
    "OH": "America/New_York", "OK": "America/Chicago", "OR": "America/Los_Angeles",
    "PA": "America/New_York", "RI": "America/New_York", "SC": "America/New_York", "SD": "America/Chicago",
    "TN": "America/Chicago", "TX": "America/Chicago", "UT": "America/Denver", "VT": "America/New_York",
    "VA": "America/New_York", "WA": "America/Los_Angeles", "WV": "America/New_York",
    "WI": "America/Chicago", "WY": "America/Denver", "PR": "America/Puerto_Rico", "GU": "Pacific/Guam",
    "VI": "America/St_Thomas",
}

#: Words that name police in general; alone they attribute to no agency.
GENERIC_WORDS: frozenset[str] = frozenset(
    {
        "police", "cops", "cop", "pd", "the police", "police department", "sheriff", "sheriffs",
        "sheriff's office", "sheriff's department", "deputies", "deputy", "officer", "officers",
        "trooper", "troopers", "state police", "highway patrol", "state patrol", "agents", "feds",
        "law enforcement", "metro police", "transit police", "campus police", "university police",
        "police officers", "the cops", "popo", "5-0", "marshals", "federal agents",
    }
)

#: In an agency's own subreddit these words are about that agency (see DESIGN.md, post_mentions).
DEFAULT_COMMUNITY_WORDS: dict[str, tuple[str, ...]] = {
    "municipal": ("police", "cops", "cop", "pd", "police department", "officer", "officers"),
    "transit": ("transit police", "police", "cops", "officer", "officers"),
    "campus": ("campus police", "university police", "police", "cops", "officer", "officers"),
    "sheriff": ("sheriff", "sheriff's office", "sheriff's department", "deputy", "deputies"),
    "state": ("trooper", "troopers", "state police", "highway patrol", "state patrol"),
    "federal": ("agents", "feds", "federal agents"),
    "tribal": ("tribal police", "police", "officer", "officers"),
    "special": ("police", "officer", "officers"),
}



_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$")
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_HASHTAG_RE = re.compile(r"^\w{1,100}$")
_SUBREDDIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")

_LIST_FIELDS = (
    "aliases", "ambiguous", "exact_case", "context", "x_handles", "hashtags", "subreddits",
    "community_words", "not_terms",
)
_KNOWN_FIELDS = frozenset(
    {"slug", "name", "kind", "jurisdiction", "state", "active", "note", "ori", "ori_missing", "tracked",
     *_LIST_FIELDS}
)
_ORI_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{7}$")
#: A registry file's ``track:`` mapping: which known agencies get queries, besides the curated ones.
_TRACK_KEYS = ("states", "kinds", "slugs", "oris")
#: The generated nationwide registry (``scripts/build_agency_registry.py``), merged by ORI.
GENERATED_GLOB = "*.csv.gz"



class RegistryError(ValueError):
    """A registry that cannot be loaded; the message names the file, the entry and the field."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} registry problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


@dataclass(frozen=True)
class AgencyEntry:
    """One law-enforcement agency and every term that identifies it."""

    slug: str
    name: str
    kind: str
    jurisdiction: str | None
    state: str | None
    aliases: tuple[str, ...]
    x_handles: tuple[str, ...]
    hashtags: tuple[str, ...]
    subreddits: tuple[str, ...]
    active: bool = True
    source_file: str = ""
    #: Aliases (also listed in ``aliases``) shared by several agencies: attributed only with context.
    ambiguous_aliases: tuple[str, ...] = ()
    #: Aliases (also in ``aliases``) that count only in this exact case, e.g. "ICE" but not "ice".
    exact_case_aliases: tuple[str, ...] = ()
    #: Extra words that settle an ambiguous alias besides the jurisdiction (e.g. "ATX", "Philly").
    context_terms: tuple[str, ...] = ()
    #: Generic police words that, in this agency's subreddits, mean this agency.
    community_words: tuple[str, ...] = ()
    #: Phrases containing an alias that do not mean the agency ("NYPD Blue", a TV show).
    not_terms: tuple[str, ...] = ()
    #: FBI Originating Agency Identifier: the key analysts join FBI crime data on.
    ori: str | None = None
    #: The FBI's agency type (City, County, State Police, University or College, Tribal, Other...).
    agency_type: str | None = None
    county: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    #: Whether the agency reported to NIBRS when the FBI list was retrieved.
    nibrs: bool | None = None
    #: IANA timezone of the agency: its trend days start at its own midnight.
    timezone: str | None = None
    #: Slug of the agency people name instead of this one (state-police troops -> the state police).
    parent: str | None = None
    #: Queries are compiled for tracked agencies; every known agency is matched.
    tracked: bool = True
    #: False for known rows that are not police (prosecutors, fire investigators): never attributed.
    matched: bool = True
    #: Built from the FBI list rather than written by hand.
    generated: bool = False
    #: Shared names this (curated) agency is the default referent of: "Houston Police" is Houston, Texas
    #: unless the post names Missouri or another Houston's county.
    default_aliases: tuple[str, ...] = ()
    #: False when the name is not what people call the police ("Samford University" is the school,
    #: "Cherokee Nation" the nation): only the aliases ("Samford University Police") are matched.
    name_is_term: bool = True

    def terms(self) -> tuple[str, ...]:
        """The phrases that name this agency: the name (when it is a term) and the aliases."""
        return (self.name, *self.aliases) if self.name_is_term else self.aliases

    def settling_terms(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return (city-level, state-level) words that settle this agency's ambiguous aliases."""
        city = tuple(t for t in (self.jurisdiction, *self.context_terms) if t)
        # Two-letter codes are left out: "in", "or", "me", "la" and the like are everyday words.
        state = (US_STATES.get(self.state, self.state),) if self.state else ()
        return city, state


class Registry:
    """The validated set of agencies; build it with ``load_registry`` or ``Registry(entries)``."""

    def __init__(self, entries: Iterable[AgencyEntry]) -> None:
        self.entries: list[AgencyEntry] = list(entries)
        validate_entries(self.entries)
        self._by_slug = {e.slug: e for e in self.entries}

    def by_slug(self, slug: str) -> AgencyEntry:
        """Return the agency with this slug, or raise RegistryError naming the unknown slug."""
        try:
            return self._by_slug[slug]
        except KeyError:
            raise RegistryError(f"unknown agency slug {slug!r}") from None

    def active(self) -> list[AgencyEntry]:
        """Agencies still collected (inactive ones stay in the store but get no new queries)."""
        return [e for e in self.entries if e.active]

    def tracked(self) -> list[AgencyEntry]:
        """Active agencies with queries compiled for them (X queries cannot cover 18,000 agencies)."""
        return [e for e in self.entries if e.active and e.tracked]

    def select(self, slugs: Sequence[str] | None) -> list[AgencyEntry]:
        """Tracked agencies, or exactly the named ones (unknown slugs raise RegistryError)."""
        if slugs is None:
            return self.tracked()
        return [self.by_slug(s) for s in dict.fromkeys(slugs)]

    def by_ori(self, ori: str) -> AgencyEntry:
        """Return the agency with this FBI ORI, or raise RegistryError."""
        for e in self.entries:
            if e.ori == ori.strip().upper():
                return e
        raise RegistryError(f"unknown ORI {ori!r}")

    def pick(
        self,
        states: Sequence[str] = (),
        kinds: Sequence[str] = (),
        slugs: Sequence[str] = (),
        oris: Sequence[str] = (),
    ) -> list[AgencyEntry]:
        """Active, matched agencies picked by state, kind, slug or ORI (union of the lists; AND of state
        and kind when both are given); unknown slugs, ORIs, states or kinds raise RegistryError."""
        bad = [s for s in states if s.upper() not in US_STATES] + [k for k in kinds if k not in KINDS]
        if bad:
            raise RegistryError(f"unknown state or kind: {', '.join(bad)}")
        picked: dict[str, AgencyEntry] = {}
        if states or kinds:
            want_states = {s.upper() for s in states}
            for e in self.entries:
                if not (e.active and e.matched and e.parent is None):
                    continue
                if (not want_states or e.state in want_states) and (not kinds or e.kind in kinds):
                    picked.setdefault(e.slug, e)
        for slug in slugs:
            e = self.by_slug(slug)
            picked.setdefault(e.slug, e)
        for ori in oris:
            e = self.by_ori(ori)
            picked.setdefault(e.slug, e)
        return sorted(picked.values(), key=lambda e: e.slug)

    def __len__(self) -> int:
        return len(self.entries)


def _where(file: str, slug: Any, index: int) -> str:
    label = f"'{slug}'" if isinstance(slug, str) and slug else f"#{index + 1}"
    return f"{file}: entry {label}"


def _as_str_list(value: Any, where: str, fname: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.append(f"{where}: field '{fname}': expected a list of strings, got {type(value).__name__}")
        return []
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            problems.append(f"{where}: field '{fname}': {item!r} is not a non-empty string")
            continue
        out.append(item.strip())
    return out


def _strip_prefix(values: list[str], prefixes: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        for p in prefixes:
            if v.lower().startswith(p):
                v = v[len(p):]
                break
        out.append(v)
    return out


_GENERIC_KEYS = frozenset(match_key(w) for w in GENERIC_WORDS)


def entry_from_mapping(raw: Any, file: str, index: int, problems: list[str]) -> AgencyEntry | None:
    """Check one YAML entry's schema; append problems (file, entry, field) and return the entry."""
    if not isinstance(raw, dict):
        problems.append(f"{_where(file, None, index)}: expected a mapping, got {type(raw).__name__}")
        return None
    slug = raw.get("slug")
    where = _where(file, slug, index)
    before = len(problems)
    for key in raw:
        if key not in _KNOWN_FIELDS:
            known = ", ".join(sorted(_KNOWN_FIELDS))
            problems.append(f"{where}: field '{key}': unknown field (known: {known})")
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        problems.append(f"{where}: field 'slug': {slug!r} must be 2-64 lowercase letters, digits or '-'")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: field 'name': required, a non-empty string")
        name = ""
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: field 'kind': {kind!r} must be one of {', '.join(KINDS)}")
    jurisdiction = raw.get("jurisdiction")
    if jurisdiction is not None and (not isinstance(jurisdiction, str) or not jurisdiction.strip()):
        problems.append(f"{where}: field 'jurisdiction': must be a non-empty string when given")
        jurisdiction = None
    state = raw.get("state")
    if kind == "federal":
        if state is not None:
            problems.append(f"{where}: field 'state': federal agencies have no state, got {state!r}")
    elif state not in US_STATES:
        problems.append(f"{where}: field 'state': {state!r} must be a two-letter US state code")
    if kind in ("municipal", "sheriff") and not jurisdiction:
        problems.append(f"{where}: field 'jurisdiction': required for a {kind} agency (its city or county)")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append(f"{where}: field 'active': must be true or false, got {active!r}")
    ori = raw.get("ori")
    if ori is not None and (not isinstance(ori, str) or not _ORI_RE.match(ori)):
        problems.append(f"{where}: field 'ori': {ori!r} is not an FBI ORI (9 characters, state code first)")
    tracked = raw.get("tracked", True)
    if not isinstance(tracked, bool):
        problems.append(f"{where}: field 'tracked': must be true or false, got {tracked!r}")
    lists = {f: _as_str_list(raw.get(f), where, f, problems) for f in _LIST_FIELDS}
    handles = _strip_prefix(lists["x_handles"], ("@",))
    hashtags = _strip_prefix(lists["hashtags"], ("#",))
    subreddits = _strip_prefix(lists["subreddits"], ("/r/", "r/"))
    for h in handles:
        if not _HANDLE_RE.match(h):
            problems.append(f"{where}: field 'x_handles': {h!r} is not an X handle (1-15 letters, digits, _)")
    for h in hashtags:
        if not _HASHTAG_RE.match(h):
            problems.append(f"{where}: field 'hashtags': {h!r} is not a hashtag (letters, digits, _)")
    for s in subreddits:
        if not _SUBREDDIT_RE.match(s):
            problems.append(f"{where}: field 'subreddits': {s!r} is not a subreddit name")
    aliases = list(dict.fromkeys(lists["aliases"] + lists["ambiguous"] + lists["exact_case"]))
    for fname in ("aliases", "ambiguous", "exact_case", "context", "community_words", "not_terms"):
        for term in lists[fname]:
            if '"' in term:
                problems.append(f"{where}: field '{fname}': {term!r} may not contain a double quote")
            elif len(match_key(term)) < 2:
                problems.append(f"{where}: field '{fname}': {term!r} is too short to match safely")
    for fname in ("aliases", "exact_case"):
        for term in lists[fname]:
            if normalize_term(term) in GENERIC_WORDS or match_key(term) in _GENERIC_KEYS:
                problems.append(
                    f"{where}: field '{fname}': {term!r} is a generic police word and cannot name one agency"
                )
    if name and (normalize_term(name) in GENERIC_WORDS or match_key(name) in _GENERIC_KEYS):
        problems.append(f"{where}: field 'name': {name!r} is a generic police word")
    if len(problems) > before:
        return None
    community_words = lists["community_words"] or (list(DEFAULT_COMMUNITY_WORDS[kind]) if subreddits else [])
    return AgencyEntry(
        slug=slug,
        name=name.strip(),
        kind=kind,
        jurisdiction=jurisdiction.strip() if jurisdiction else None,
        state=state,
        aliases=tuple(aliases),
        x_handles=tuple(dict.fromkeys(handles)),
        hashtags=tuple(dict.fromkeys(hashtags)),
        subreddits=tuple(dict.fromkeys(subreddits)),
        active=active,
        source_file=file,
        ambiguous_aliases=tuple(dict.fromkeys(lists["ambiguous"])),
        exact_case_aliases=tuple(dict.fromkeys(lists["exact_case"])),
        context_terms=tuple(dict.fromkeys(lists["context"])),
        community_words=tuple(dict.fromkeys(community_words)),
        not_terms=tuple(dict.fromkeys(lists["not_terms"])),
        ori=ori,
        tracked=tracked,
        timezone=STATE_TIMEZONES.get(state) if isinstance(state, str) else None,
    )


def validate_entries(entries: Sequence[AgencyEntry]) -> None:
    """Refuse duplicate slugs and any term that would attribute to two agencies (all reported)."""
    problems: list[str] = []
    slugs: dict[str, AgencyEntry] = {}
    terms: dict[str, tuple[AgencyEntry, str, bool]] = {}  # key -> (owner, as written, ambiguous)
    handles: dict[str, AgencyEntry] = {}
    hashtags: dict[str, AgencyEntry] = {}
    community: dict[tuple[str, str], AgencyEntry] = {}

    def where(e: AgencyEntry) -> str:
        return f"{e.source_file or '<memory>'}: entry '{e.slug}'"

    for e in entries:
        if e.slug in slugs:
            other = slugs[e.slug]
            problems.append(
                f"{where(e)}: field 'slug': duplicate slug, first defined in "
                f"{other.source_file or '<memory>'}"
            )
            continue
        slugs[e.slug] = e
        if not e.matched:
            continue  # known, never attributed: its names claim nothing
        ambiguous = {match_key(a) for a in e.ambiguous_aliases}
        own: set[str] = set()
        for fname, term in [("name", e.name)] * e.name_is_term + [("aliases", a) for a in e.aliases]:
            key = match_key(term)
            if key in own:
                continue
            own.add(key)
            is_amb = key in ambiguous
            seen = terms.get(key)
            if seen is None:
                terms[key] = (e, term, is_amb)
            elif seen[0].slug != e.slug and not (is_amb and seen[2]):
                problems.append(
                    f"{where(e)}: field '{fname}': {term!r} also names '{seen[0].slug}' "
                    f"({seen[0].source_file or '<memory>'}); list it under 'ambiguous' in both entries "
                    "or remove it from one"
                )
        for h in e.x_handles:
            other = handles.setdefault(h.lower(), e)
            if other.slug != e.slug:
                problems.append(f"{where(e)}: field 'x_handles': @{h} is also a handle of '{other.slug}'")
        for h in e.hashtags:
            other = hashtags.setdefault(match_key(h), e)
            if other.slug != e.slug:
                problems.append(f"{where(e)}: field 'hashtags': #{h} is also a hashtag of '{other.slug}'")
        for sub in e.subreddits:
            for word in e.community_words:
                other = community.setdefault((sub.lower(), normalize_term(word)), e)
                if other.slug != e.slug:
                    problems.append(
                        f"{where(e)}: field 'subreddits': in r/{sub} the word {word!r} would mean both "
                        f"'{other.slug}' and '{e.slug}'; set 'community_words' to tell them apart"
                    )
    if problems:
        raise RegistryError(problems)


def load_registry(directory: Path | None = None) -> Registry:
    """Load and validate every ``*.yaml`` file in the registry folder (sorted by name).

    Users extend the registry by dropping another YAML file next to ``agencies.yaml``.
    """
    folder = Path(directory) if directory is not None else DEFAULT_REGISTRY_DIR
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise RegistryError(f"{folder}: no *.yaml registry files found")
    problems: list[str] = []
    entries: list[AgencyEntry] = []
    tracks: dict[str, list[str]] = {k: [] for k in _TRACK_KEYS}
    for path in files:
        label = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problems.append(f"{label}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{label}: cannot be read: {exc}")
            continue
        if data is None:
            continue
        if (not isinstance(data, dict) or not data or not set(data) <= {"agencies", "track"}
                or not isinstance(data.get("agencies", []), list)):
            problems.append(f"{label}: expected a mapping with one key 'agencies' holding a list of entries"
                            " (and optionally 'track')")
            continue
        if "track" in data:
            spec = data["track"]
            if not isinstance(spec, dict) or not set(spec) <= set(_TRACK_KEYS):
                problems.append(f"{label}: 'track' must be a mapping of {', '.join(_TRACK_KEYS)} to lists")
            else:
                for key in _TRACK_KEYS:
                    tracks[key] += _as_str_list(spec.get(key), f"{label}: track", key, problems)
        for index, raw in enumerate(data.get("agencies", [])):
            entry = entry_from_mapping(raw, label, index, problems)
            if entry is not None:
                entries.append(entry)
    if problems:
        raise RegistryError(problems)
    generated = sorted(folder.glob(GENERATED_GLOB))
    if generated:
        entries = merge_generated(entries, [e for path in generated for e in read_generated(path)])
    registry = Registry(entries)
    if any(tracks.values()):
        picked = {e.slug for e in registry.pick(**tracks)}
        registry = Registry(dataclasses.replace(e, tracked=True) if e.slug in picked and not e.tracked else e
                            for e in entries)
    return registry


_STATE_NAMES = frozenset(US_STATES.values())


def _opt_float(value: str) -> float | None:
    return float(value) if value.strip() else None


def read_generated(path: Path) -> list[AgencyEntry]:
    """Entries of the generated nationwide file; match terms come from the naming rules.

    A town's police gets its town and county as settling words, a sheriff the towns of its county,
    so "Clinton PD ... Clinton County" or "Washington County deputies in Hillsboro" can settle a
    name that 19 or 30 agencies share.
    """
    from trustwatch.collectors.agencies.naming import is_placeless, match_terms

    out: list[AgencyEntry] = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            kind, name, county = row["kind"], row["name"], row["county"] or None
            rule_terms = match_terms(name, kind)
            if is_placeless(name) and row["state"] in US_STATES:
                rule_terms = [f"{US_STATES[row['state']]} {t}" for t in rule_terms]
            terms = [t for t in rule_terms if t != name and not _is_generic(t)]
            if _is_generic(name):
                continue
            place = None
            for suffix in (" Police Department", " Sheriff's Office", " Sheriff's Department"):
                if name.endswith(suffix):
                    place = name[: -len(suffix)]
            head, colon, tail = row["fbi_name"].partition(":")
            if kind == "campus" and colon and tail.strip():
                # "University of Alabama: Tuscaloosa": posts say "University of Alabama Police"; the
                # campus town settles which campus when several share the head.
                terms += [t for t in (f"{head.strip()} Police", f"{head.strip()} Police Department") if t not in terms]
                place = place or tail.strip()
            counties = [c.strip() for c in (county or "").split(";") if c.strip()]
            context = [f"{c} County" for c in counties] if kind == "municipal" else []
            # A town named like a state ("Kansas Police Department", Illinois) is never what a post
            # about the state means: its names attribute only with its own state or county named.
            ambiguous = (name, *terms) if place in _STATE_NAMES else ()
            if place in _STATE_NAMES:
                place = None  # the state's name must not settle the town named like it
            if row.get("places"):
                context += row["places"].split(";")
            out.append(AgencyEntry(
                slug=row["slug"], name=name, kind=kind, jurisdiction=place or county, state=row["state"] or None,
                aliases=tuple(terms), x_handles=(), hashtags=(), subreddits=(), source_file=path.name,
                context_terms=tuple(dict.fromkeys(c for c in context if c and c != place)),
                ori=row["ori"] or None, agency_type=row["agency_type"] or None, county=county,
                latitude=_opt_float(row["latitude"]), longitude=_opt_float(row["longitude"]),
                nibrs=(row["nibrs"] == "1") if row["nibrs"] else None, timezone=row["timezone"] or None,
                parent=row["parent"] or None, tracked=False, matched=row["matched"] == "1", generated=True,
                ambiguous_aliases=ambiguous, name_is_term=name in rule_terms,
            ))
    return out


def _is_generic(term: str) -> bool:
    return normalize_term(term) in GENERIC_WORDS or match_key(term) in _GENERIC_KEYS


def merge_generated(curated: list[AgencyEntry], generated: list[AgencyEntry]) -> list[AgencyEntry]:
    """Curated entries plus the generated ones, merged by ORI; shared names become ambiguous.

    A curated entry keeps its terms, handles and subreddits and gains the FBI row's metadata; every
    other FBI row is added as a known (not tracked) agency.  A match term that several agencies share
    ("Clinton Police Department": 19 towns) is marked ambiguous in each of them, so it attributes only
    when the post settles which one (see ``Matcher``).
    """
    by_ori = {e.ori: e for e in generated if e.ori}
    curated_slugs = {e.slug for e in curated}
    merged: list[AgencyEntry] = []
    taken: set[str] = set()
    for e in curated:
        row = by_ori.get(e.ori) if e.ori else None
        if row is not None:
            taken.add(row.slug)
            e = dataclasses.replace(
                e, agency_type=row.agency_type, county=row.county, latitude=row.latitude,
                longitude=row.longitude, nibrs=row.nibrs, timezone=row.timezone or e.timezone,
            )
        merged.append(e)
    merged += [g for g in generated if g.slug not in taken and g.slug not in curated_slugs]
    owners: dict[str, set[int]] = {}
    for i, e in enumerate(merged):
        if not (e.active and e.matched):
            continue
        for term in e.terms():
            owners.setdefault(match_key(term), set()).add(i)
    shared: dict[int, list[str]] = {}
    defaults: dict[int, list[str]] = {}
    for i, e in enumerate(merged):
        if not (e.active and e.matched):
            continue
        for term in e.terms():
            group = owners[match_key(term)]
            if len(group) > 1 and any(merged[j].generated for j in group):
                shared.setdefault(i, []).append(term)
                curated_owners = [j for j in group if not merged[j].generated]
                if curated_owners == [i]:
                    defaults.setdefault(i, []).append(term)
    for i, terms in shared.items():
        e = merged[i]
        merged[i] = dataclasses.replace(
            e, ambiguous_aliases=tuple(dict.fromkeys((*e.ambiguous_aliases, *terms))),
            aliases=tuple(dict.fromkeys((*e.aliases, *[t for t in terms if t != e.name]))),
            default_aliases=tuple(dict.fromkeys(defaults.get(i, ()))),
        )
    return merged


# --------------------------------------------------------------------------------------------
# Matcher
# --------------------------------------------------------------------------------------------
