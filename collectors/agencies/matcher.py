"""The mention matcher: one Aho-Corasick automaton over every term of every agency.

The cost per post depends on the post, not on the size of the registry.  A second, smaller automaton
of settling words (cities, states) runs only for posts whose ambiguous term is not settled otherwise.
Keys carry a space on each side and the text is scanned in a one-for-one "scan form" (punctuation as
spaces), so every key starts and ends at a word boundary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import ahocorasick_rs
from trustwatch.collectors.agencies.registry import US_STATES, AgencyEntry, Registry
from trustwatch.collectors.agencies.text import (
    _SCAN_TABLE,
    OffsetMap,
    _quick_scan_latin1,
    _scan_form,
    match_key,
    non_ascii_chars,
    normalize_term,
    normalize_text,
)


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


class Unsettled(NamedTuple):
    """A name several agencies share, found in a post that does not say which one it means."""

    term: str
    start: int
    end: int
    candidates: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``agency`` null, like an unattributed mention row."""
        return {"agency": None, "term": self.term, "kind": "ambiguous", "start": self.start, "end": self.end,
                "candidates": list(self.candidates)}


_STATE_CODE_RE = re.compile(r"(?:,[ \t]*|\()([A-Z]{2})\b")
_STATE_CODE_KEYS = {code: match_key(name) for code, name in US_STATES.items()}
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

    def __reduce__(self) -> tuple[type[_Slot], tuple[Any, ...]]:
        """Pickle as a constructor call: a third of the default's load time for a slotted class (62,000 slots
        in the nationwide matcher, loaded by every collect task from the registry cache)."""
        return _Slot, (self.attributes, self.ambiguous, self.context, self.blocker, self.strong, self.plain,
                       self.exact)


_BLOCKED = _Slot(blocker=True, strong=True)
#: Builds a Match from a tuple without the named tuple's Python-level ``__new__`` (one per mention).
_new_match = tuple.__new__


def _leftmost_longest(hit: tuple[int, int, Any]) -> tuple[int, int]:
    return hit[0], hit[0] - hit[1]


def _match_order(m: Match) -> tuple[int, str, str]:
    return m.start, m.agency_slug, m.kind


def _automaton(words: dict[str, Any]) -> tuple[Any, list[Any]]:
    """An Aho-Corasick automaton over the keys of ``words`` (all overlapping matches), and their values.

    ahocorasick-rs (the Rust ``aho-corasick`` crate) keeps each state's matches with the state, where
    pyahocorasick walks the failure links at every character: a scan costs about a quarter less on average,
    and half on posts full of agency-like phrases ("Union City Police in Union City"), for the same matches.
    The automaton reads the scan form as bytes: the crate reports byte offsets, and over a ``str`` the binding
    turned them into character offsets with a pass over the whole post at every call (a twentieth of the
    matcher's instructions).  Scans are Latin-1 (one byte per character) whenever they can be, which is every
    quick scan; a key with a Latin-1 letter ("policía de ...") is there in both encodings, which cannot match
    each other's scans (folded text holds no character 0x80-0xBF, the bytes every UTF-8 sequence needs), and
    the rare scan with other characters is UTF-8, its few hits converted by :func:`_char_hits`.
    """
    keys = sorted(words)
    patterns = [k.encode("utf-8") for k in keys]
    values = [words[k] for k in keys]
    for k in keys:
        if not k.isascii() and max(k) <= "\xff":
            patterns.append(k.encode("latin-1"))
            values.append(words[k])
    automaton = ahocorasick_rs.BytesAhoCorasick(patterns, matchkind=ahocorasick_rs.MATCHKIND_STANDARD)
    return automaton.find_matches_as_indexes, values


def _char_hits(scan: bytes, hits: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Hits over a UTF-8 scan with character offsets (every key starts and ends with a space, so each byte
    offset is a character boundary)."""
    return [(i, len(scan[:start].decode("utf-8")), len(scan[:stop].decode("utf-8"))) for i, start, stop in hits]


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
        self._agencies: list[AgencyEntry] = [e for e in registry.entries if e.active and e.matched]
        self._slugs: list[str] = [e.slug for e in self._agencies]
        self._slots: dict[str, _Slot] = {}
        self._all_states: set[str] = set()
        self._city_ctx: list[frozenset[str]] = []
        self._state_ctx: list[frozenset[str]] = []
        self._subreddits: dict[str, list[int]] = {}
        self._community_cache: dict[str, str] = {}
        self._community_words: list[tuple[str, ...]] = []
        amb_groups: dict[str, tuple[list[int], str, str | None]] = {}
        defaults: dict[str, int] = {}
        derived: dict[str, list[tuple[int, str]]] = {}
        for idx, e in enumerate(self._agencies):
            exact = set(e.exact_case_aliases)
            ambiguous = {match_key(a) for a in e.ambiguous_aliases}
            for term, kind in [(e.name, "name")] * e.name_is_term + [(a, "alias") for a in e.aliases]:
                key = match_key(term)
                exact_form = term if term in exact else None
                if key in ambiguous:
                    cands, _, _ = amb_groups.setdefault(key, ([], term, exact_form))
                    if idx not in cands:
                        cands.append(idx)
                    if term in e.default_aliases:
                        defaults.setdefault(key, idx)
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
            if e.kind == "municipal" and not e.generated:
                # Only curated cities: "Normal police" or "Commerce cops" would be everyday words.
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
            by_state: dict[str | None, list[int]] = {}
            for i in cands:
                by_state.setdefault(self._agencies[i].state, []).append(i)
            self._slot(key).ambiguous = (
                frozenset(cands), term, exact_form, city_index, state_index, defaults.get(key), by_state,
                tuple(sorted(self._agencies[i].slug for i in cands)),
            )
        # Two automatons: the attributing terms, scanned for every post, and the settling words
        # (cities, states), scanned only when an ambiguous alias is not settled otherwise.  Most
        # posts pay for one pass over the specific terms only; police words for a community are
        # looked up directly (an agency has a handful).
        strong_words: dict[str, tuple[_Slot, int]] = {}
        settling_words: dict[str, str] = {}
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
            # Values: (slot, characters to skip at the start of the match).
            if slot.strong:
                strong_words[f" {key} "] = (slot, 0)
                hashtag = "#" + key
                if " " not in key and key[0] not in "@#" and hashtag not in self._slots:
                    # "#LAPD" names the LAPD even when it is not a registered hashtag.
                    strong_words[f" {hashtag} "] = (slot, 1)
            if slot.context:
                # Values: the settling word the key stands for.
                settling_words[f" {key} "] = key
                if " " not in key and key[0] not in "@#":
                    settling_words[f" #{key} "] = key
        # Kept so that a pickled matcher (trustwatch/cache.py, one per registry for every task process) can
        # rebuild its automatons, which are native objects and do not pickle.
        self._strong_words, self._settling_words = strong_words, settling_words
        self._build_automatons()

    def _build_automatons(self) -> None:
        self._strong_find, self._strong_values = _automaton(self._strong_words)
        # Both stay the crate's contiguous NFA: as DFAs they run fewer instructions but need 110 and 12 MiB
        # more, and their tables miss the caches between posts; the matcher got slower (BENCHMARKS.md).
        self._settling_find, self._settling_values = _automaton(self._settling_words)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state (``collectors/agencies/cache.py``): the automatons are native objects, so they are
        left out and rebuilt from their words on load (a tenth of building the whole matcher)."""
        state = dict(self.__dict__)
        for name in ("_strong_find", "_strong_values", "_settling_find", "_settling_values"):
            del state[name]
        state["_community_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_automatons()

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

    def match(
        self, text: str, community: str | None = None, unsettled: list[Unsettled] | None = None
    ) -> list[Match]:
        """Return the agency mentions in ``text``; ``community`` is the subreddit it was posted in.

        Pass a list as ``unsettled`` to have it receive the shared names the post did not settle
        (not attributed, but countable: the analyst sees what was left out and why).
        """
        if not text:
            return []
        community_agencies: Sequence[int] = ()
        sub = ""
        if community:
            sub = self._community_cache.get(community, "")
            if not sub:
                sub = self._community_cache.setdefault(community, _normalize_community(community) or "")
            community_agencies = self._subreddits.get(sub, ())
        omap: OffsetMap | None = None
        wide = False  # a UTF-8 scan: the automaton's byte offsets need converting
        if text.isascii():
            # The scan form of ASCII text inline (most posts): one translate, no function calls.
            scan = b" " + text.encode("ascii").translate(_SCAN_TABLE) + b" "
            hits = self._strong_find(scan, True)
            if not hits and not community_agencies:
                return []
            norm = text.lower()
        else:
            chars = non_ascii_chars(text)
            quick = _quick_scan_latin1(text, chars)
            folded: str | None = None
            if quick is None:
                folded, omap = normalize_text(text, chars)
                full = _scan_form(folded)
                wide = max(full) > "\xff"
                quick = full.encode("utf-8" if wide else "latin-1")
            scan = quick
            hits = self._strong_find(scan, True)
            if not hits and not community_agencies:
                return []  # most posts: no term, no community, and no normalization needed
            if folded is None:
                folded, omap = normalize_text(text, chars)
            norm = folded
            if wide and hits:
                hits = _char_hits(scan, hits)
        may_have_urls = "." in norm or "@" in norm
        strong: list[tuple[int, int, _Slot]] = []
        values = self._strong_values
        for index, start, stop in hits:
            # The key " core " spans scan[start:stop]; scan has one leading space more than norm, so the
            # core is norm[start:stop - 2].
            slot, skip = values[index]
            end = stop - 2
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
            strong.sort(key=_leftmost_longest)
        chosen: list[tuple[int, int, list[tuple[int, str, str]], Any]] = []
        matched: set[int] = set()
        ambiguous = False
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
            if amb is not None:
                ambiguous = True
            elif not attrs:
                continue
            # (start, end) in the scan's coordinates too: a place inside an agency's name settles nothing.
            chosen.append((o_start, o_end, attrs, amb, start, end))
            for attribute in attrs:
                matched.add(attribute[0])
            last_end = end

        context: set[str] = set()
        if ambiguous and self._unsettled_alone(chosen, matched, community_agencies):
            # Only now are the city and state words worth a pass of their own.
            context = self._context(scan, wide, norm, text, chosen, may_have_urls)

        results: list[Match] = []
        slugs = self._slugs
        for o_start, o_end, attrs, amb, _start, _end in chosen:
            for i, term, kind in attrs:
                results.append(_new_match(Match, (slugs[i], term, kind, o_start, o_end)))
            if amb is not None:
                settled = self._settle(amb, matched, community_agencies, context)
                for i in settled:
                    results.append(_new_match(Match, (slugs[i], amb[1], "alias", o_start, o_end)))
                if not settled and unsettled is not None:
                    unsettled.append(Unsettled(amb[1], o_start, o_end, amb[7]))
        if community_agencies:
            attributed = {m.agency_slug for m in results}
            for i in community_agencies:
                if slugs[i] in attributed or not self._community_words[i]:
                    continue
                span = _first_police_word(self._community_words[i], norm, may_have_urls)
                if span is not None:
                    o_start, o_end = span if omap is None else omap.span(*span)
                    results.append(_new_match(Match, (slugs[i], f"r/{sub}", "community", o_start, o_end)))
        if len(results) > 1:
            results.sort(key=_match_order)
        return results

    @staticmethod
    def _unsettled_alone(chosen: list[Any], matched: set[int], community: Sequence[int]) -> bool:
        """Whether an ambiguous name is left that the post's own evidence (agencies it names for certain, its
        community's) does not settle: only then are the city and state words read."""
        evidence: set[int] | frozenset[int] = matched.union(community) if community else matched
        for chosen_one in chosen:
            amb = chosen_one[3]
            if amb is not None and amb[0].isdisjoint(evidence):
                return True
        return False

    def _context(
        self, scan: bytes, wide: bool, norm: str, text: str, chosen: list[Any], may_have_urls: bool
    ) -> set[str]:
        """The settling words (cities, counties, states) the post names outside the agency names it uses."""
        context: set[str] = set()
        settling = self._settling_values
        hits = self._settling_find(scan, True)
        for index, begin, stop in _char_hits(scan, hits) if wide and hits else hits:
            word = settling[index]
            if word in context:
                continue
            end = stop - 2
            for chosen_one in chosen:
                if chosen_one[4] <= begin and end <= chosen_one[5]:
                    # A place inside an agency's name settles nothing: "Wilson" in "Wilson County
                    # Sheriff's Office", "Texas" in "Texas Highway Patrol".
                    break
            else:
                if not (may_have_urls and _inside_url(norm, begin, end)):
                    context.add(word)
        # "Clinton, IA" / "Clinton (IA)": a capitalised postal code after a comma or in
        # parentheses names the state; bare two-letter words ("in", "or", "me") never do.
        if "," in text or "(" in text:
            for code in _STATE_CODE_RE.findall(text):
                state_key = _STATE_CODE_KEYS.get(code)
                if state_key:
                    context.add(state_key)
        return context

    def _settle(
        self, amb: tuple[Any, ...], matched: set[int], community: Sequence[int], context: set[str]
    ) -> list[int]:
        """Which candidates of an ambiguous alias the post settles: own evidence, city, then state."""
        candidates, _term, _exact, city_index, state_index, default, by_state, _slugs = amb
        if matched or community:
            direct = [i for i in (*matched, *community) if i in candidates]
            if direct:
                return list(dict.fromkeys(direct))
        fallback = [] if default is None else [default]
        if matched and default is None:
            # "Kalamazoo Police and Portage police": the one Portage in the state of an agency the
            # post names for certain (never over a curated default: "Denver PD and SEPTA" is Denver).
            near = [i for state in {self._agencies[i].state for i in matched} for i in by_state.get(state, ())]
            if len(near) == 1:
                fallback = near
        if not context:
            return fallback
        city: list[int] = []
        for word in context:
            found = city_index.get(word)
            if found:
                city.extend(found)
        if len(city) > 1:
            city = list(dict.fromkeys(city))
        if city:
            states = context & self._all_states
            if states:
                # A city named together with another state is another city of that name.
                city = [i for i in city if not (states - self._city_ctx[i])
                        or not states.isdisjoint(self._state_ctx[i])]
            if city:
                return city
        state: set[int] = set()
        for word in context:
            found = state_index.get(word)
            if found:
                state.update(found)
        return list(state) if len(state) == 1 else fallback

    def agencies_in(self, text: str, community: str | None = None) -> list[str]:
        """Slugs of the agencies ``text`` mentions, in order of first mention."""
        return list(dict.fromkeys(m.agency_slug for m in self.match(text, community)))


# --------------------------------------------------------------------------------------------
# Query compilers
# --------------------------------------------------------------------------------------------
