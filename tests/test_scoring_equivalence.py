"""The Aho-Corasick trust lexicon gives exactly the hits, and the scorer exactly the scores, of the former
single regular expression: on the labeled posts, on 10,000 sandbox posts, and on texts built to probe the
matching rules (hyphens, odd whitespace, word starts, hashtags, emoji, longest entry first)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml
from trustwatch.analysis.lexicon import NEGATION_FACTOR, NEGATIONS, QUESTION_FACTOR, flat_lexicon
from trustwatch.analysis.scoring import (
    _CLAUSE_BREAK,
    _WORD,
    Hit,
    MentionSpan,
    Scorer,
    TrustLexicon,
    _sentence_index,
    sentence_spans,
)

LABELED = Path(__file__).parent / "data" / "trust_labeled.yaml"


def _entry_pattern(entry: str) -> str:
    if not any(ch.isalnum() for ch in entry):
        return re.escape(entry)
    words = entry.split(" ")
    parts = [re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words]
    return r"[\s\-]+".join(parts) + r"(?!\w)"


class RegexLexicon:
    """The former implementation (scoring.py before issue 19), kept verbatim as the reference."""

    def __init__(self, entries: dict[str, float] | None = None) -> None:
        self.entries = dict(entries if entries is not None else flat_lexicon())
        ordered = sorted(self.entries, key=lambda e: (-len(e.rstrip("*")), e))
        word_entries = [e for e in ordered if any(c.isalnum() for c in e)]
        symbol_entries = [e for e in ordered if not any(c.isalnum() for c in e)]
        self._by_group = word_entries + symbol_entries
        words = "|".join(f"({_entry_pattern(e)})" for e in word_entries)
        symbols = "|".join(f"({_entry_pattern(e)})" for e in symbol_entries)
        self._pattern = re.compile(rf"(?<![\w#])(?:{words})" + (f"|{symbols}" if symbols else ""))

    def hits(self, text: str) -> list[Hit]:
        low = text.lower().replace("’", "'")
        found: list[Hit] = []
        sentences = None
        for m in self._pattern.finditer(low):
            entry = self._by_group[(m.lastindex or 1) - 1]
            weight = self.entries[entry]
            if weight == 0.0:
                continue
            clause_start = 0
            for brk in _CLAUSE_BREAK.finditer(low, max(0, m.start() - 60), m.start()):
                clause_start = brk.end()
            before = _WORD.findall(low, max(clause_start, m.start() - 60), m.start())[-3:]
            if any(w in NEGATIONS for w in before):
                weight = -weight * NEGATION_FACTOR
            if sentences is None:
                sentences = sentence_spans(low)
            sent_end = sentences[_sentence_index(sentences, m.start())][1]
            if low[:sent_end].rstrip().endswith("?"):
                weight *= QUESTION_FACTOR
            found.append(Hit(entry, weight, m.start()))
        return found


@pytest.fixture(scope="module")
def lexicons() -> tuple[TrustLexicon, RegexLexicon]:
    return TrustLexicon(), RegexLexicon()


def _probe_texts(n: int, seed: int) -> list[str]:
    """Random texts from lexicon entries, their pieces and neighbours, joined by the separators that matter."""
    rng = random.Random(seed)
    entries = list(flat_lexicon())
    pieces = [w.rstrip("*") for e in entries for w in e.split(" ")]
    extras = ["NYPD", "#", "##", "@", "_", "x", "ing", "s", "'s", "un", "anti", "é", "ß", "İ", "١٢", "日本",
              "?", "!", ".", ",", "(", ")", "don't", "not", "never", "no", "’"]
    seps = [" ", "  ", "-", " - ", "--", "\n", "\t", "\u00a0", "\u2009", "", "", "", " ", " ", " "]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            choice = rng.random()
            if choice < 0.35:
                token = rng.choice(entries).replace("*", rng.choice(["", "s", "ed", "ion", "_x"]))
                token = token.replace(" ", rng.choice(seps[:9]))
            elif choice < 0.7:
                token = rng.choice(pieces)
            else:
                token = rng.choice(extras)
            if rng.random() < 0.2:
                token = token.upper() if rng.random() < 0.5 else token.title()
            parts.append(token)
            parts.append(rng.choice(seps))
        out.append("".join(parts))
    return out


def test_lexicon_hits_equal_the_regex_on_probe_texts(lexicons) -> None:
    ours, reference = lexicons
    for text in _probe_texts(20_000, seed=19):
        assert ours.hits(text) == reference.hits(text), text


def test_scores_equal_on_labeled_and_sandbox_posts(lexicons, registry, matcher) -> None:
    from trustwatch.sandbox.common import CorpusConfig
    from trustwatch.sandbox.x_corpus import XCorpus

    ours, reference = lexicons
    new, old = Scorer(lexicon=ours), Scorer(lexicon=reference)
    ids = {e.slug: i for i, e in enumerate(registry.entries)}
    texts = [item["text"] for item in yaml.safe_load(LABELED.read_text(encoding="utf-8"))["posts"]]
    corpus = XCorpus(CorpusConfig(seed=7, posts=10_000), registry.entries)
    texts += [t.full_text for t in corpus.tweets.values()]
    assert len(texts) >= 10_000
    compared = 0
    for text in texts:
        spans = [MentionSpan(ids[m.agency_slug], m.start, m.end) for m in matcher.match(text)]
        assert ours.hits(text) == reference.hits(text), text
        if spans:
            assert new.score_post(text, None, spans) == old.score_post(text, None, spans), text
            compared += 1
    assert compared >= 5_000
