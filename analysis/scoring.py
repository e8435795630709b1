"""Sentiment and trust scores of a post toward each agency it mentions.

Two numbers per (post, agency):

* ``sentiment``: VADER's compound score (lexicon-based, offline) of the text around the mention;
* ``trust_score`` in [-1, 1]: the trust lexicon (:mod:`analysis.lexicon`) read over the same text,
  with VADER's sentiment as a weaker second voice, squashed the way VADER squashes its own sums.

"The text around the mention" matters because a post often names two agencies with opposite verdicts
("thanks to NYPD ... meanwhile the MTA police shrugged"), or buries the mention in an unrelated story.
The mention's sentence and the sentence after it are scored (the next sentence usually carries the
verdict: "Nobody came. Useless."), leaving out sentences that name another agency.  Mentions without
offsets (a comment inheriting its thread's agencies) are scored on the whole post.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from trustwatch.analysis.lexicon import LEXICON_VERSION, NEGATION_FACTOR, NEGATIONS, QUESTION_FACTOR, flat_lexicon

#: Stored in post_scores.scorer.
SCORER_NAME = "vader+trust-lexicon"
#: Stored in post_scores.scorer_version; the part after "lex" follows the lexicon's own version.
SCORER_VERSION = f"1.0-lex{LEXICON_VERSION}"

#: Weight of VADER's compound sentiment next to the lexicon sum before squashing.
VADER_WEIGHT = 1.0
#: VADER's normalisation constant is 15 for sums of word valences around 1-4; our sums are smaller.
SQUASH_ALPHA = 1.0

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
_WORD = re.compile(r"[\w']+")
_CLAUSE_BREAK = re.compile(r"[,;:.!?()\[\]\-–—]")


@dataclass(frozen=True, slots=True)
class MentionSpan:
    """Where a post names an agency: offsets into ``title + "\\n" + text`` (or text), None when unknown."""

    agency_id: int
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One lexicon entry found in a text, with the weight it contributed."""

    entry: str
    weight: float
    start: int


@dataclass(frozen=True, slots=True)
class Score:
    """The scores of one text (a mention's context or a whole post)."""

    sentiment: float
    trust: float
    hits: tuple[Hit, ...] = field(default=())


def score_text_of(text: str, title: str | None) -> str:
    """The text mention offsets point into: the title and the body, as the matcher read them."""
    return f"{title}\n{text}" if title else text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence boundaries as (start, end) offsets; newlines end sentences too (titles, list items)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans or [(0, len(text))]


def _sentence_index(spans: Sequence[tuple[int, int]], offset: int) -> int:
    """The sentence holding ``offset``: the last one starting at or before it."""
    index = 0
    for i, (start, _end) in enumerate(spans):
        if start > offset:
            break
        index = i
    return index


def mention_context(text: str, own: Iterable[MentionSpan], others: Iterable[MentionSpan]) -> str:
    """The text scored for one agency: its mentions' sentences and the sentence after each.

    A following sentence that names another agency belongs to that agency and is left out.  Without any
    offset the whole text is the context.
    """
    own_offsets = [m.start for m in own if m.start is not None and 0 <= m.start <= len(text)]
    if not own_offsets:
        return text
    spans = sentence_spans(text)
    if len(spans) == 1:
        return text
    other_sentences = {_sentence_index(spans, m.start) for m in others
                       if m.start is not None and 0 <= m.start <= len(text)}
    chosen: set[int] = set()
    for offset in own_offsets:
        i = _sentence_index(spans, offset)
        chosen.add(i)
        if i + 1 < len(spans) and i + 1 not in other_sentences:
            chosen.add(i + 1)
    if len(chosen) == len(spans):
        return text
    return " ".join(text[spans[i][0]:spans[i][1]] for i in sorted(chosen))


def _is_word_char(ch: str) -> bool:
    """The regular-expression ``\\w`` for one character (letters and digits of any script, underscore)."""
    return ch.isalnum() or ch == "_"


_SEPARATORS = re.compile(r"[\s\-]+")
#: A separator other than one plain space: only then is the text rewritten before the scan.
_NEEDS_COLLAPSE = re.compile(r"[^\S ]|-| \s")


class TrustLexicon:
    """The trust lexicon as one Aho-Corasick automaton (pyahocorasick), scanned once per text.

    Entries are matched at word starts (not after a letter, digit, ``_`` or ``#``; emoji anywhere), the
    words of a phrase joined by any run of spaces or hyphens, a ``*`` entry running to the end of its word.
    Where several entries start at one position the longest entry wins (ties: alphabetical), and matches
    never overlap, scanning left to right: the rules of the single regular expression this replaces, which
    spent more time than VADER itself (``tests/test_scoring_equivalence.py`` keeps the two equal).
    """

    def __init__(self, entries: dict[str, float] | None = None) -> None:
        import ahocorasick

        self.entries = dict(entries if entries is not None else flat_lexicon())
        ordered = sorted(self.entries, key=lambda e: (-len(e.rstrip("*")), e))
        word_entries = [e for e in ordered if any(c.isalnum() for c in e)]
        symbol_entries = [e for e in ordered if not any(c.isalnum() for c in e)]
        # key (the literal part, words joined by one space) -> [(priority, entry, is_word, open_ended)]
        keys: dict[str, list[tuple[int, str, bool, bool]]] = {}
        for priority, entry in enumerate(word_entries + symbol_entries):
            is_word = any(c.isalnum() for c in entry)
            key = " ".join(entry.rstrip("*").split(" ")) if is_word else entry
            keys.setdefault(key, []).append((priority, entry, is_word, is_word and entry.endswith("*")))
        self._automaton = ahocorasick.Automaton()
        for key, variants in keys.items():
            self._automaton.add_word(key, (len(key), tuple(sorted(variants))))
        self._automaton.make_automaton()

    def _matches(self, low: str) -> list[tuple[int, str]]:
        """(start offset in ``low``, entry) of every entry found, by the rules in the class docstring."""
        if _NEEDS_COLLAPSE.search(low):
            norm, starts = _collapse(low)
        else:
            norm, starts = low, None
        size = len(norm)
        best: dict[int, tuple[int, str, int]] = {}  # start -> (priority, entry, end)
        for last, (length, variants) in self._automaton.iter(norm):
            start = last + 1 - length
            end = last + 1
            for priority, entry, is_word, open_ended in variants:
                if is_word:
                    if start > 0 and (norm[start - 1] == "#" or _is_word_char(norm[start - 1])):
                        break  # the word guard is the same for every variant of this key
                    stop = end
                    if open_ended:
                        while stop < size and _is_word_char(norm[stop]):
                            stop += 1
                    elif stop < size and _is_word_char(norm[stop]):
                        continue
                else:
                    stop = end
                held = best.get(start)
                if held is None or priority < held[0]:
                    best[start] = (priority, entry, stop)
                break  # variants are sorted by priority: the first that fits is this key's best
        if not best:
            return []
        out: list[tuple[int, str]] = []
        pos = 0
        for start in sorted(best):
            if start < pos:
                continue
            _priority, entry, stop = best[start]
            out.append((starts[start] if starts is not None else start, entry))
            pos = stop
        return out

    def hits(self, text: str) -> list[Hit]:
        """Entries found in ``text`` with their effective weights (negation and questions applied)."""
        low = text.lower().replace("’", "'")
        found: list[Hit] = []
        sentences: list[tuple[int, int]] | None = None
        for start, entry in self._matches(low):
            weight = self.entries[entry]
            if weight == 0.0:
                continue  # a guard entry ("kind of", "stay safe") that only blocks a shorter one
            clause_start = 0
            for brk in _CLAUSE_BREAK.finditer(low, max(0, start - 60), start):
                clause_start = brk.end()
            before = _WORD.findall(low, max(clause_start, start - 60), start)[-3:]
            if any(w in NEGATIONS for w in before):
                weight = -weight * NEGATION_FACTOR
            if sentences is None:
                sentences = sentence_spans(low)
            sent_end = sentences[_sentence_index(sentences, start)][1]
            if low[:sent_end].rstrip().endswith("?"):
                weight *= QUESTION_FACTOR
            found.append(Hit(entry, weight, start))
        return found


def _collapse(low: str) -> tuple[str, list[int]]:
    """``low`` with every run of whitespace and hyphens made one space, and each kept character's offset."""
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for m in _SEPARATORS.finditer(low):
        parts.append(low[pos:m.start()])
        starts.extend(range(pos, m.start()))
        parts.append(" ")
        starts.append(m.start())
        pos = m.end()
    parts.append(low[pos:])
    starts.extend(range(pos, len(low)))
    return "".join(parts), starts


def squash(raw: float, alpha: float = SQUASH_ALPHA) -> float:
    """Map an unbounded sum into (-1, 1) the way VADER normalises its compound score."""
    return raw / math.sqrt(raw * raw + alpha)


class Scorer:
    """VADER plus the trust lexicon; one instance per process (VADER loads its lexicon once)."""

    name = SCORER_NAME

    def __init__(self, version: str = SCORER_VERSION, lexicon: TrustLexicon | None = None) -> None:
        self.version = version
        self.lexicon = lexicon or TrustLexicon()

    @cached_property
    def vader(self) -> object:
        """VADER's analyzer, loaded on first use (reads its lexicon files)."""
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    def sentiment(self, text: str) -> float:
        """VADER's compound score of ``text``."""
        return float(self.vader.polarity_scores(text)["compound"])  # type: ignore[attr-defined]

    def score_text(self, text: str) -> Score:
        """Sentiment and trust of one piece of text."""
        if not text.strip():
            return Score(0.0, 0.0)
        sentiment = self.sentiment(text)
        hits = self.lexicon.hits(text)
        raw = sum(h.weight for h in hits) + VADER_WEIGHT * sentiment
        return Score(round(sentiment, 4), round(squash(raw), 4), tuple(hits))

    def score_post(self, text: str, title: str | None, mentions: Sequence[MentionSpan]) -> dict[int, Score]:
        """Scores toward each agency mentioned: agency id -> Score of that agency's context."""
        full = score_text_of(text, title)
        by_agency: dict[int, list[MentionSpan]] = {}
        for m in mentions:
            by_agency.setdefault(m.agency_id, []).append(m)
        cache: dict[str, Score] = {}
        out: dict[int, Score] = {}
        for agency_id, own in by_agency.items():
            others = [m for m in mentions if m.agency_id != agency_id]
            context = mention_context(full, own, others)
            if context not in cache:
                cache[context] = self.score_text(context)
            out[agency_id] = cache[context]
        return out
