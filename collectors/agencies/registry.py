"""The agency registry: entries, validation and loading from the YAML files under ``agencies/``.

Loading refuses entries that would attribute one term to two agencies, so an attribution error is a
load error the editor sees, not a silent trend shift.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from trustwatch.collectors.agencies.text import match_key, normalize_term

from trustwatch.settings import resource_dir

DEFAULT_REGISTRY_DIR: Path = resource_dir("agencies")

KINDS: tuple[str, ...] = ("municipal", "sheriff", "state", "federal", "transit", "campus")

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
    {"slug", "name", "kind", "jurisdiction", "state", "active", "note", *_LIST_FIELDS}
)



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

    def select(self, slugs: Sequence[str] | None) -> list[AgencyEntry]:
        """Active agencies, or exactly the named ones (unknown slugs raise RegistryError)."""
        if slugs is None:
            return self.active()
        return [self.by_slug(s) for s in dict.fromkeys(slugs)]

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
        ambiguous = {match_key(a) for a in e.ambiguous_aliases}
        own: set[str] = set()
        for fname, term in [("name", e.name)] + [("aliases", a) for a in e.aliases]:
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
        if not isinstance(data, dict) or set(data) != {"agencies"} or not isinstance(data["agencies"], list):
            problems.append(f"{label}: expected a mapping with one key 'agencies' holding a list of entries")
            continue
        for index, raw in enumerate(data["agencies"]):
            entry = entry_from_mapping(raw, label, index, problems)
            if entry is not None:
                entries.append(entry)
    if problems:
        raise RegistryError(problems)
    return Registry(entries)


# --------------------------------------------------------------------------------------------
# Matcher
# --------------------------------------------------------------------------------------------
