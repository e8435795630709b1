"""Agency registry, mention matcher and query compilers.

Attribution is the heart of the data: analysts trust a trend only if "which post mentions which
agency" is right.  So the registry is data (YAML files anyone can extend), loading refuses entries
that would attribute one term to two agencies, and the matcher attributes an ambiguous acronym
(APD, MPD, HCSO...) only when the post itself settles it.

The matcher runs one Aho-Corasick automaton (pyahocorasick), built once, over every term of every
agency, so the cost per post depends on the post, not on the size of the registry.  A second,
smaller automaton of settling words (cities, states) runs only for posts whose ambiguous acronym is
not settled otherwise.  Keys carry a space on each side and the text is scanned in a one-for-one
"scan form" (punctuation as spaces), so every key starts and ends at a word boundary and the
automaton idles at its root inside words.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import ahocorasick
import yaml

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

DEFAULT_GLOBAL_SUBREDDITS: tuple[str, ...] = ("police", "ProtectAndServe", "Bad_Cop_No_Donut", "news")

REDDIT_MAX_QUERY_LENGTH = 512
X_QUERY_LENGTHS: tuple[int, ...] = (512, 1024, 4096)

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


class QueryError(ValueError):
    """A query that cannot be compiled (e.g. one term longer than the platform allows)."""


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


# --------------------------------------------------------------------------------------------
# Normalization with offsets
# --------------------------------------------------------------------------------------------

_PUNCT = str.maketrans(
    {
        "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    }
)


def _fold(chunk: str) -> str:
    """NFKC + casefold (+ curly quotes and dashes made plain) of a short non-ASCII chunk."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", chunk).casefold())
    return folded.translate(_PUNCT)


_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
#: Scripts where characters without a combining class still compose under NFC (Indic vowel signs,
#: Hangul jamo...): never folded one character at a time.
_COMPOSING_RANGES = ((0x0900, 0x0DFF), (0x1000, 0x109F), (0x1100, 0x11FF), (0x1B00, 0x1B7F))
#: Per non-ASCII character: None (folds to its own lowercase), (lowercase, fold) to replace, or
#: "" when folding changes the length.
_CHAR_FOLDS: dict[str, tuple[str, str] | str | None] = {}


def _char_fold(ch: str) -> tuple[str, str] | str | None:
    """How one non-ASCII character folds (cached: posts reuse the same few emoji and accents)."""
    folded = _fold(ch)
    code = ord(ch)
    info: tuple[str, str] | str | None
    if (
        len(folded) != 1
        or len(ch.lower()) != 1
        or unicodedata.combining(ch)
        or any(lo <= code <= hi for lo, hi in _COMPOSING_RANGES)
    ):
        info = ""
    elif ch.lower() == folded:
        info = None
    else:
        info = (ch.lower(), folded)
    if len(_CHAR_FOLDS) < 100_000:
        _CHAR_FOLDS[ch] = info
    return info


def _classify(text: str) -> tuple[dict[str, str], str]:
    """For a non-ASCII text: replacements for one-to-one characters, and the other characters."""
    replace: dict[str, str] = {}
    other = ""
    folds = _CHAR_FOLDS
    for ch in set(_NON_ASCII_RE.findall(text)):
        info = folds[ch] if ch in folds else _char_fold(ch)
        if info is None:
            continue
        if info == "":
            other += ch
        else:
            replace[info[0]] = info[1]  # type: ignore[index]
    return replace, "".join(sorted(other))


@functools.lru_cache(maxsize=256)
def _unsafe_pattern(unsafe: str) -> re.Pattern[str]:
    """Finds the characters that fold to another length."""
    return re.compile("[" + re.escape(unsafe) + "]")


@dataclass(frozen=True, slots=True)
class OffsetMap:
    """Maps offsets in normalized text back to the original; segments are (norm, orig, nlen, olen)."""

    norm_starts: tuple[int, ...]
    segments: tuple[tuple[int, int, int, int], ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) covering normalized [start, end)."""
        i = bisect.bisect_right(self.norm_starts, start) - 1
        ns, os_, nl, ol = self.segments[i]
        o_start = os_ + (start - ns) if nl == ol else os_
        j = bisect.bisect_right(self.norm_starts, end - 1) - 1
        ns, os_, nl, ol = self.segments[j]
        o_end = os_ + (end - ns) if nl == ol else os_ + ol
        return o_start, o_end


def normalize_text(text: str) -> tuple[str, OffsetMap | None]:
    """NFKC + casefold with offsets kept; the map is None when every offset stays the same.

    ASCII is just ``str.lower``; characters that fold one-to-one (emoji, accented letters,
    full-width forms, curly quotes, no-break spaces) are replaced in place.  Only characters that
    fold to another length ("…", "ß", "ﬁ", combining marks) get segments in an offset map.
    Whitespace is kept one for one: the matcher reads every run of spaces and punctuation as a
    word boundary, so a name broken by a single line break still matches.
    """
    if text.isascii():
        return text.lower(), None
    replace, unsafe = _classify(text)
    if not unsafe:
        norm = text.lower()
        for lowered, folded in replace.items():
            norm = norm.replace(lowered, folded)
        return norm, None
    pieces: list[str] = []
    segments: list[tuple[int, int, int, int]] = []
    npos = 0
    opos = 0
    size = len(text)
    for m in _unsafe_pattern(unsafe).finditer(text):
        s = m.start()
        if s < opos:
            continue  # already part of the previous cluster
        if unicodedata.combining(text[s]) and s > opos:
            s -= 1  # a combining mark composes with the letter before it
        e = s + 1
        while e < size and unicodedata.combining(text[e]):
            e += 1
        folded = _fold(text[s:e])
        if s > opos:
            pieces.append(text[opos:s])
            segments.append((npos, opos, s - opos, s - opos))
            npos += s - opos
        if folded:  # a character that folds to nothing maps to no normalized text
            pieces.append(folded)
            segments.append((npos, s, len(folded), e - s))
            npos += len(folded)
        opos = e
    if opos < size:
        pieces.append(text[opos:])
        segments.append((npos, opos, size - opos, size - opos))
    # Lowercasing and one-to-one replacements keep every length, so the segments stay valid.
    norm = "".join(pieces).lower()
    for lowered, folded in replace.items():
        norm = norm.replace(lowered, folded)
    if not segments:
        segments.append((0, 0, 0, size))
    return norm, OffsetMap(tuple(seg[0] for seg in segments), tuple(segments))


def normalize_term(term: str) -> str:
    """A registry term normalized like post text (NFKC, casefold, single spaces)."""
    return normalize_text(term.strip())[0].strip()


#: Per non-ASCII character: the one Latin-1 character that stands for it in scan form (" " for emoji, quotes,
#: dashes and spaces, "n" for a full-width "Ｎ", "é" for "É"), or "" when there is none (Greek, CJK, characters
#: that fold to another length).
_SCAN_CHARS: dict[str, str] = {}


def _scan_char(ch: str) -> str:
    """How one non-ASCII character appears in scan form, when that is a Latin-1 character (cached), else ""."""
    info = _CHAR_FOLDS[ch] if ch in _CHAR_FOLDS else _char_fold(ch)
    if info == "":
        stand_in = ""
    else:
        folded = ch.lower() if info is None else info[1]  # type: ignore[index]
        if not (folded.isalnum() or folded in "_@#"):
            stand_in = " "
        else:
            stand_in = folded if ord(folded) < 256 else ""
    if len(_SCAN_CHARS) < 100_000:
        _SCAN_CHARS[ch] = stand_in
    return stand_in


#: Scan form: every character that is not part of a word (letters, digits, '_') or a handle or
#: hashtag sign becomes a space, one for one, so offsets survive.  Keys are " core " with a space
#: on each side: a key can then only start and end at word boundaries, and the automaton falls
#: back to its root inside every word instead of walking the dense upper levels of the trie.
#: The table takes ASCII and Latin-1 text there in one ``bytes.translate``, letters lowercased as well (a
#: Latin-1 character without a stand-in never reaches it).
_SCAN_TABLE = bytes(
    ord(chr(c).lower()) if (chr(c).isalnum() or chr(c) in "_@#") else 32 for c in range(128)
) + bytes(ord(_scan_char(chr(c)) or " ") for c in range(128, 256))
_NON_WORD_RE = re.compile(r"[^\w@# ]")


def _scan_form(norm: str) -> str:
    """Normalized text in scan form, with the boundary spaces around it (offsets shift by one).

    ASCII goes through ``bytes.translate`` (``str.translate`` is several times slower, and far
    slower still on non-ASCII text, where one regex substitution does the same job).
    """
    if norm.isascii():
        return f" {norm.encode('ascii').translate(_SCAN_TABLE).decode('ascii')} "
    return f" {_NON_WORD_RE.sub(' ', norm)} "


def _quick_scan(text: str) -> str | None:
    """Scan form straight from the original text, or None when that needs the full normalization first.

    Equal to ``_scan_form(normalize_text(text)[0])`` whenever it returns a string: ASCII text, and text whose
    non-ASCII characters each stand for one Latin-1 character in scan form (emoji, curly quotes, dashes, no-break
    spaces, full-width forms, accented Latin letters), which covers most posts.  The matcher then normalizes only
    the posts it finds a term in.
    """
    if text.isascii():
        return f" {text.encode('ascii').translate(_SCAN_TABLE).decode('ascii')} "
    chars = _SCAN_CHARS
    for ch in set(_NON_ASCII_RE.findall(text)):
        stand_in = chars[ch] if ch in chars else _scan_char(ch)
        if not stand_in:
            return None
        if ch > "\xff":
            text = text.replace(ch, stand_in)
    return f" {text.encode('latin-1').translate(_SCAN_TABLE).decode('latin-1')} "


def match_key(term: str) -> str:
    """The core of a term's automaton key: normalized, in scan form, trimmed ("L.A.P.D." -> "l a p d")."""
    return _scan_form(normalize_term(term)).strip()


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


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


class Match(NamedTuple):
    """One piece of evidence that a text mentions an agency; offsets index the original text.

    A named tuple: immutable like a frozen dataclass, and made three times faster (one per mention).
    """

    agency_slug: str
    term: str
    kind: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``trustwatch agencies match``."""
        return {"agency": self.agency_slug, "term": self.term, "kind": self.kind,
                "start": self.start, "end": self.end}


_LETTER_RANK = {c: i for i, c in enumerate(" etaoinshrdlcumwfgypbvkjxqz0123456789@#_")}
_CITY_POLICE_PATTERNS = ("{} police", "{} cops", "{} pd", "{} police dept", "policía de {}", "policia de {}")
_DIRECTIONS = ("north ", "south ", "east ", "west ")
_URLISH_RE = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|gov|edu|us|io|ly|co|me|tv)\b(?:/\S*)?"
)


def _inside_url(norm: str, start: int, end: int) -> bool:
    """Whether [start, end) lies in a URL, e-mail address or domain (never a mention there).

    Only the whitespace-delimited token around the hit is examined: URLs hold no spaces, and a
    regex over the whole post would cost more than the matching itself.
    """
    left = norm.rfind(" ", 0, start) + 1
    right = norm.find(" ", end)
    if right < 0:
        right = len(norm)
    token = norm[left:right]
    if "." not in token and "@" not in token:
        return False
    s, e = start - left, end - left
    return any(m.start() < e and s < m.end() for m in _URLISH_RE.finditer(token))


def _first_police_word(words: tuple[str, ...], norm: str, may_have_urls: bool) -> tuple[int, int] | None:
    """Span of the leftmost police word (whole words, not after '@', outside URLs) in normalized text, or None.

    ``words`` are longest first, so at one position the longer word wins ("campus police" over "police").
    A handful of ``str.find`` calls cost a fraction of one regex with look-arounds over the whole post.
    """
    best: tuple[int, int] | None = None
    size = len(norm)
    for word in words:
        i = norm.find(word)
        while i >= 0 and (best is None or i < best[0]):
            j = i + len(word)
            before = norm[i - 1] if i else " "
            if (
                not (before.isalnum() or before in "_@")
                and not (j < size and (norm[j].isalnum() or norm[j] == "_"))
                and not (may_have_urls and _inside_url(norm, i, j))
            ):
                best = (i, j)
                break
            i = norm.find(word, i + 1)
    return best


_CAPS_TOKEN_RE = re.compile(r"[^\W\d_]{2,}")


def _same_capitals(written: str, term: str, text: str, start: int, end: int) -> bool:
    """Exact-case rule: words the registry writes in capitals are capitals in the post too.

    "ICE" and "ICE's" count, "ice" and "Ice Cube" do not; "LA police" counts but French "La police"
    does not.  A post with no lowercase letter (shouting) carries no case signal unless the term is
    all it says ("ICE.").
    """
    if len(written) != len(term):
        return False
    for m in _CAPS_TOKEN_RE.finditer(term):
        if m.group().isupper() and not written[m.start():m.end()].isupper():
            return False
    if not any(c.islower() for c in text):
        rest = text[:start] + text[end:]
        if sum(c.isalpha() for c in rest) >= 2:
            return False
    return True


@dataclass(slots=True)
class _Slot:
    """Everything one normalized key means (an alias of one agency, a context word of others...)."""

    #: (agency index, term as written, kind, exact-case form or None)
    attributes: list[tuple[int, str, str, str | None]] = field(default_factory=list)
    #: (candidate agency indexes, term as written, exact-case form or None,
    #:  per candidate: city-level settling words, state-level settling words)
    ambiguous: tuple[Any, ...] | None = None
    context: bool = False
    #: A "not term": wins the overlap against the alias it contains and attributes nothing.
    blocker: bool = False
    #: Takes part in overlap resolution (attributes, ambiguous or blocker); set once built.
    strong: bool = False
    #: ``attributes`` without the exact-case form, and whether any term needs the case check.
    plain: list[tuple[int, str, str]] = field(default_factory=list)
    exact: bool = False


_BLOCKED = _Slot(blocker=True, strong=True)


def _normalize_community(community: str | None) -> str | None:
    if not community:
        return None
    c = community.strip().lower()
    for prefix in ("/r/", "r/"):
        if c.startswith(prefix):
            c = c[len(prefix):]
    return c.strip("/") or None


class Matcher:
    """Finds agency mentions in post text with one automaton built once from the registry.

    Build it once per process (a registry of 18,000 agencies takes a few seconds) and call
    ``match`` per post; it is read-only after construction apart from small caches.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._agencies: list[AgencyEntry] = [e for e in registry.entries if e.active]
        self._slots: dict[str, _Slot] = {}
        self._all_states: set[str] = set()
        self._city_ctx: list[frozenset[str]] = []
        self._state_ctx: list[frozenset[str]] = []
        self._subreddits: dict[str, list[int]] = {}
        self._community_cache: dict[str, str] = {}
        self._community_words: list[tuple[str, ...]] = []
        amb_groups: dict[str, tuple[list[int], str, str | None]] = {}
        derived: dict[str, list[tuple[int, str]]] = {}
        for idx, e in enumerate(self._agencies):
            exact = set(e.exact_case_aliases)
            ambiguous = {match_key(a) for a in e.ambiguous_aliases}
            for term, kind in [(e.name, "name")] + [(a, "alias") for a in e.aliases]:
                key = match_key(term)
                exact_form = term if term in exact else None
                if key in ambiguous:
                    cands, _, _ = amb_groups.setdefault(key, ([], term, exact_form))
                    if idx not in cands:
                        cands.append(idx)
                else:
                    self._slot(key).attributes.append((idx, term, kind, exact_form))
            for h in e.x_handles:
                self._slot("@" + h.lower()).attributes.append((idx, "@" + h, "handle", None))
            for h in e.hashtags:
                self._slot("#" + match_key(h)).attributes.append((idx, "#" + h, "hashtag", None))
            for t in e.not_terms:
                self._slot(match_key(t)).blocker = True
            city, state = e.settling_terms()
            self._city_ctx.append(frozenset(match_key(t) for t in city))
            self._state_ctx.append(frozenset(match_key(t) for t in state))
            for key in self._city_ctx[-1] | self._state_ctx[-1]:
                self._slot(key).context = True
            if e.kind == "municipal":
                # "Memphis cops", "ATX police", "policía de Chicago": how people name a city's police.
                for place in city:
                    for pattern in _CITY_POLICE_PATTERNS:
                        phrase = pattern.format(place)
                        derived.setdefault(match_key(phrase), []).append((idx, phrase))
            words = frozenset(normalize_term(w) for w in e.community_words)
            self._community_words.append(tuple(sorted((w for w in words if w), key=len, reverse=True))
                                         if e.subreddits else ())
            for sub in e.subreddits:
                self._subreddits.setdefault(sub.lower(), []).append(idx)
        for key, owners in derived.items():
            if len({i for i, _ in owners}) != 1:
                continue  # two cities of the same name: the phrase settles nothing
            slot = self._slots.get(key)
            if slot is not None and (slot.attributes or slot.ambiguous or slot.blocker):
                continue  # an explicit registry term always wins
            if key in amb_groups:
                continue
            self._slot(key).attributes.append((owners[0][0], owners[0][1], "alias", None))
        for state_name in US_STATES.values():
            # Every state name is context, so "APD in Aurora, Illinois" is not Aurora, Colorado.
            self._all_states.add(match_key(state_name))
        for key in self._all_states:
            self._slot(key).context = True
        for key, (cands, term, exact_form) in amb_groups.items():
            # A settling word shared by two candidates ("Orange County" for the sheriffs of CA and
            # FL) settles nothing between them, so each candidate keeps only the words it alone has.
            # Indexed by settling word, so settling costs what the post contains, not the group size.
            city_index: dict[str, list[int]] = {}
            state_index: dict[str, list[int]] = {}
            for i in cands:
                for word in self._exclusive(self._city_ctx, i, cands):
                    city_index.setdefault(word, []).append(i)
                for word in self._exclusive(self._state_ctx, i, cands):
                    state_index.setdefault(word, []).append(i)
            self._slot(key).ambiguous = (frozenset(cands), term, exact_form, city_index, state_index)
        # Two automatons: the attributing terms, scanned for every post, and the settling words
        # (cities, states), scanned only when an ambiguous alias is not settled otherwise.  Most
        # posts pay for one pass over the specific terms only; police words for a community are
        # looked up directly (an agency has a handful).
        self._automaton = ahocorasick.Automaton()
        self._settling = ahocorasick.Automaton()
        strong_words: list[tuple[str, tuple[int, _Slot, int]]] = []
        settling_words: list[tuple[str, tuple[int, _Slot, int]]] = []
        for key, slot in self._slots.items():
            # One attribution per agency and key: an alias equal to the name stays the name.
            unique: dict[int, tuple[int, str, str, str | None]] = {}
            for attribute in slot.attributes:
                unique.setdefault(attribute[0], attribute)
            slot.attributes = list(unique.values())
            slot.plain = [(i, t, k) for i, t, k, _ in slot.attributes]
            slot.exact = any(a[3] is not None for a in slot.attributes) or (
                slot.ambiguous is not None and slot.ambiguous[2] is not None
            )
            slot.strong = bool(slot.attributes) or slot.ambiguous is not None or slot.blocker
            # Values: (length of the core, slot, characters to skip at the start of the match).
            if slot.strong:
                strong_words.append((f" {key} ", (len(key), slot, 0)))
                hashtag = "#" + key
                if " " not in key and key[0] not in "@#" and hashtag not in self._slots:
                    # "#LAPD" names the LAPD even when it is not a registered hashtag.
                    strong_words.append((f" {hashtag} ", (len(hashtag), slot, 1)))
            if slot.context:
                settling_words.append((f" {key} ", (len(key), slot, 0)))
                if " " not in key and key[0] not in "@#":
                    settling_words.append((f" #{key} ", (len(key) + 1, slot, 1)))
        for automaton, words in ((self._automaton, strong_words), (self._settling, settling_words)):
            # pyahocorasick scans a node's children in insertion order: inserting keys in order of
            # English letter frequency puts the likely branch first (about 10% faster scans).
            words.sort(key=lambda kv: [_LETTER_RANK.get(c, 99) for c in kv[0]])
            for word, value in words:
                automaton.add_word(word, value)
            automaton.make_automaton()

    @staticmethod
    def _exclusive(sets: list[frozenset[str]], i: int, group: Sequence[int]) -> frozenset[str]:
        others: set[str] = set()
        for j in group:
            if j != i:
                others |= sets[j]
        return sets[i] - others

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def match(self, text: str, community: str | None = None) -> list[Match]:
        """Return the agency mentions in ``text``; ``community`` is the subreddit it was posted in."""
        if not text:
            return []
        community_agencies: list[int] = []
        sub = ""
        if community:
            sub = self._community_cache.get(community, "")
            if not sub:
                sub = self._community_cache.setdefault(community, _normalize_community(community) or "")
            community_agencies = self._subreddits.get(sub, [])
        scan = _quick_scan(text)
        if scan is None:
            norm, omap = normalize_text(text)
            scan = _scan_form(norm)
            hits: Any = self._automaton.iter(scan)
        else:
            hits = list(self._automaton.iter(scan))
            if not hits and not community_agencies:
                return []  # most posts: no term, no community, and no normalization needed
            norm, omap = normalize_text(text)
        may_have_urls = "." in norm or "@" in norm
        strong: list[tuple[int, int, _Slot]] = []
        for end_idx, (length, slot, skip) in hits:
            # The key's trailing space sits at scan[end_idx], i.e. norm[end_idx - 1].
            end = end_idx - 1
            start = end - length
            if may_have_urls and _inside_url(norm, start, end):
                continue
            # "North Miami Police", "East Cleveland Police": another city with its own police;
            # the span still blocks the shorter aliases inside it ("Vegas Police").
            if slot.attributes and start >= 5 and norm[start - 1] == " " and norm[
                max(0, start - 6):start
            ].endswith(_DIRECTIONS):
                slot = _BLOCKED
            strong.append((start + skip, end, slot))
        if not strong and not community_agencies:
            return []

        # Leftmost-longest among attributing spans; exact-case terms must match the original text.
        if len(strong) > 1:
            strong.sort(key=lambda h: (h[0], h[0] - h[1]))
        chosen: list[tuple[int, int, list[tuple[int, str, str]], Any]] = []
        matched: set[int] = set()
        ambiguous: list[Any] = []
        last_end = -1
        for start, end, slot in strong:
            if start < last_end:
                continue
            if slot.blocker:
                last_end = end
                continue
            o_start, o_end = (start, end) if omap is None else omap.span(start, end)
            attrs = slot.plain
            amb = slot.ambiguous
            if slot.exact:
                written = text[o_start:o_end]
                attrs = [
                    (i, t, k) for i, t, k, ex in slot.attributes
                    if ex is None or _same_capitals(written, ex, text, o_start, o_end)
                ]
                if amb is not None and amb[2] is not None and not _same_capitals(
                    written, amb[2], text, o_start, o_end
                ):
                    amb = None
            if not attrs and amb is None:
                continue
            chosen.append((o_start, o_end, attrs, amb))
            for attribute in attrs:
                matched.add(attribute[0])
            if amb is not None:
                ambiguous.append(amb)
            last_end = end

        context: set[str] = set()
        if ambiguous:
            evidence = matched.union(community_agencies)
            if any(amb[0].isdisjoint(evidence) for amb in ambiguous):
                # Only now are the city and state words worth a pass of their own.
                for end_idx, (length, _slot, skip) in self._settling.iter(scan):
                    end = end_idx - 1
                    if not (may_have_urls and _inside_url(norm, end - length, end)):
                        context.add(scan[end_idx - length + skip:end_idx])

        results: list[Match] = []
        agencies = self._agencies
        for o_start, o_end, attrs, amb in chosen:
            for i, term, kind in attrs:
                results.append(Match(agencies[i].slug, term, kind, o_start, o_end))
            if amb is not None:
                for i in self._settle(amb, matched, community_agencies, context):
                    results.append(Match(agencies[i].slug, amb[1], "alias", o_start, o_end))
        if community_agencies:
            attributed = {m.agency_slug for m in results}
            for i in community_agencies:
                if agencies[i].slug in attributed or not self._community_words[i]:
                    continue
                span = _first_police_word(self._community_words[i], norm, may_have_urls)
                if span is not None:
                    o_start, o_end = span if omap is None else omap.span(*span)
                    results.append(Match(agencies[i].slug, f"r/{sub}", "community", o_start, o_end))
        if len(results) > 1:
            results.sort(key=lambda m: (m.start, m.agency_slug, m.kind))
        return results

    def _settle(
        self, amb: tuple[Any, ...], matched: set[int], community: list[int], context: set[str]
    ) -> list[int]:
        """Which candidates of an ambiguous alias the post settles: own evidence, city, then state."""
        candidates, _term, _exact, city_index, state_index = amb
        direct = [i for i in (*matched, *community) if i in candidates]
        if direct:
            return list(dict.fromkeys(direct))
        if not context:
            return []
        city = list(dict.fromkeys(i for word in context for i in city_index.get(word, ())))
        states = context & self._all_states
        if city and states:
            # A city named together with another state is another city of that name.
            city = [i for i in city if not (states - self._city_ctx[i])
                    or not states.isdisjoint(self._state_ctx[i])]
        if city:
            return city
        state = {i for word in context for i in state_index.get(word, ())}
        return list(state) if len(state) == 1 else []

    def agencies_in(self, text: str, community: str | None = None) -> list[str]:
        """Slugs of the agencies ``text`` mentions, in order of first mention."""
        return list(dict.fromkeys(m.agency_slug for m in self.match(text, community)))


# --------------------------------------------------------------------------------------------
# Query compilers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XQuery:
    """One X search query; ``version`` changes whenever the text does."""

    key: str
    text: str
    version: str
    agency_slugs: tuple[str, ...]


@dataclass(frozen=True)
class RedditQuery:
    """One Reddit search; the collector joins ``subreddits`` with '+'."""

    key: str
    text: str
    subreddits: tuple[str, ...]
    version: str
    agency_slugs: tuple[str, ...]


_BARE_WORD_RE = re.compile(r"^[A-Za-z0-9_]+$")
_X_OPERATOR_WORDS = frozenset({"or", "and", "not"})


def _quote(term: str) -> str:
    """A bare word when X/Reddit would read it as one, else a quoted phrase."""
    if _BARE_WORD_RE.match(term) and term.lower() not in _X_OPERATOR_WORDS:
        return term
    return f'"{term}"'


def query_version(text: str) -> str:
    """Hash of a query's text: the ledger keeps it so a changed query is a new version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _phrase_terms(entry: AgencyEntry) -> list[str]:
    """Name and unambiguous aliases, minus those another kept term already finds as a phrase."""
    skip = {normalize_term(a) for a in entry.ambiguous_aliases + entry.exact_case_aliases}
    terms: dict[str, str] = {}
    for term in (entry.name, *entry.aliases):
        key = normalize_term(term)
        if key not in skip and key not in terms:
            terms[key] = term
    # Search is by phrase: "Chicago Police" already finds "Chicago Police Department".
    keys = list(terms)
    kept = [
        k for k in keys
        if not any(o != k and f" {o} " in f" {k} " for o in keys)
    ]
    return [terms[k] for k in kept]


def _x_terms(entry: AgencyEntry) -> list[str]:
    """Every X search term for one agency, in registry order."""
    out = [_quote(t) for t in _phrase_terms(entry)]
    out += [f"@{h}" for h in entry.x_handles]
    out += [f"#{h}" for h in entry.hashtags]
    if entry.jurisdiction:
        for amb in entry.ambiguous_aliases:
            if amb not in entry.exact_case_aliases:
                out.append(f"({_quote(amb)} {_quote(entry.jurisdiction)})")
    return list(dict.fromkeys(out))


def _pack(
    items: Sequence[tuple[str, str]], limit: int, wrap: Any, what: str
) -> list[tuple[str, tuple[str, ...]]]:
    """First-fit packing of agencies' (slug, term) lists into OR-joined texts within ``limit``.

    An agency's terms stay in one query whenever they fit in one, so a query's ``agency_slugs`` are
    complete for each agency it names; only an agency too big for one query is split.
    """
    by_agency: dict[str, list[str]] = {}
    for slug, term in items:
        if len(wrap([term])) > limit:
            raise QueryError(
                f"{what}: term {term} of agency '{slug}' needs {len(wrap([term]))} characters with the "
                f"query's fixed parts, over the limit of {limit}"
            )
        by_agency.setdefault(slug, []).append(term)
    bins: list[tuple[list[str], list[str]]] = []  # (terms, slugs)
    for slug, terms in by_agency.items():
        if len(wrap(terms)) <= limit:
            for bin_terms, bin_slugs in bins:
                if len(wrap(bin_terms + terms)) <= limit:
                    bin_terms.extend(terms)
                    bin_slugs.append(slug)
                    break
            else:
                bins.append((list(terms), [slug]))
            continue
        current: list[str] = []
        for term in terms:  # too big for one query: split it over as few as needed
            if current and len(wrap([*current, term])) > limit:
                bins.append((current, [slug]))
                current = []
            current.append(term)
        bins.append((current, [slug]))
    return [(wrap(terms), tuple(slugs)) for terms, slugs in bins]


def compile_x_queries(
    registry: Registry,
    max_query_length: int = 512,
    suffix: str = "",
    agencies: Sequence[str] | None = None,
) -> list[XQuery]:
    """Pack every agency term into as few X queries as fit ``max_query_length``; deterministic."""
    if max_query_length < 16:
        raise QueryError(f"max_query_length {max_query_length} is too small for any query")
    suffix = " ".join(suffix.split())
    entries = sorted(registry.select(agencies), key=lambda e: e.slug)
    items = [(e.slug, term) for e in entries for term in _x_terms(e)]

    def wrap(terms: list[str]) -> str:
        body = " OR ".join(terms)
        if suffix:
            body = f"({body}) {suffix}" if len(terms) > 1 or " " in body else f"{body} {suffix}"
        return body

    queries = []
    for n, (text, slugs) in enumerate(_pack(items, max_query_length, wrap, "X query"), start=1):
        version = query_version(text)
        key = f"x-q{n:02d}-{version[:8]}"
        queries.append(XQuery(key=key, text=text, version=version, agency_slugs=slugs))
    return queries


def _reddit_query(
    text: str, subreddits: Sequence[str], slugs: Sequence[str], prefix: str, n: int
) -> RedditQuery:
    version = query_version(text + "\x00" + "+".join(subreddits))
    return RedditQuery(
        key=f"reddit-{prefix}{n:02d}-{version[:8]}",
        text=text,
        subreddits=tuple(subreddits),
        version=version,
        agency_slugs=tuple(slugs),
    )


def compile_reddit_queries(
    registry: Registry,
    global_subreddits: Sequence[str] = DEFAULT_GLOBAL_SUBREDDITS,
    agencies: Sequence[str] | None = None,
    max_subreddits: int = 20,
) -> list[RedditQuery]:
    """Reddit searches: agency names in the global subreddits, police words in the agencies' own.

    Local queries rely on the community rule: in r/Austin, "police" or "APD" means Austin's police.
    """
    entries = sorted(registry.select(agencies), key=lambda e: e.slug)
    limit = REDDIT_MAX_QUERY_LENGTH

    def wrap(terms: list[str]) -> str:
        return " OR ".join(terms)

    queries: list[RedditQuery] = []
    globals_ = [_strip_prefix([s], ("/r/", "r/"))[0] for s in global_subreddits]
    if globals_:
        items = [(e.slug, _quote(t)) for e in entries for t in _phrase_terms(e)]
        for n, (text, slugs) in enumerate(_pack(items, limit, wrap, "Reddit query"), start=1):
            queries.append(_reddit_query(text, globals_, slugs, "g", n))

    # Local: group agencies' subreddits; the text is the police words plus short aliases.
    chunks: list[tuple[list[str], list[str], list[str]]] = []  # (terms, subreddits, slugs)
    for e in entries:
        if not e.subreddits:
            continue
        words = [_quote(w) for w in e.community_words]
        words += [_quote(a) for a in e.aliases if a not in e.exact_case_aliases
                  and not any(w in normalize_term(a).split() for w in ("police", "sheriff", "cops"))]
        if chunks:
            terms, subs, slugs = chunks[-1]
            merged = list(dict.fromkeys(terms + words))
            new_subs = list(dict.fromkeys(subs + list(e.subreddits)))
            if len(wrap(merged)) <= limit and len(new_subs) <= max_subreddits:
                chunks[-1] = (merged, new_subs, [*slugs, e.slug])
                continue
        terms = list(dict.fromkeys(words))
        while len(wrap(terms)) > limit:
            terms.pop()  # the longest tail aliases go first; police words lead the list
        chunks.append((terms, list(e.subreddits), [e.slug]))
    for n, (terms, subs, slugs) in enumerate(chunks, start=1):
        queries.append(_reddit_query(wrap(terms), subs, slugs, "l", n))
    return queries
