"""The trust scorer: agreement with hand-labeled posts, mention-local context, the lexicon's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trustwatch.analysis.lexicon import TRUST_LEXICON, flat_lexicon
from trustwatch.analysis.scoring import MentionSpan, Scorer, mention_context, sentence_spans

LABELED = Path(__file__).parent / "data" / "trust_labeled.yaml"
#: |score| below this counts as neutral (VADER's own threshold for its compound score).
NEUTRAL_BAND = 0.05


def sign(value: float) -> int:
    return 0 if abs(value) < NEUTRAL_BAND else (1 if value > 0 else -1)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def test_labeled_posts_sign_agreement(scorer: Scorer, registry, matcher) -> None:
    """Acceptance: the trust score's sign agrees with the hand label on >= 75 % of polar posts."""
    items = yaml.safe_load(LABELED.read_text(encoding="utf-8"))["posts"]
    assert len(items) >= 60
    ids = {e.slug: i for i, e in enumerate(registry.entries)}
    polar_hits, polar, neutral_hits, neutral, vader_hits, misses = 0, 0, 0, 0, 0, []
    for item in items:
        spans = [MentionSpan(ids[m.agency_slug], m.start, m.end) for m in matcher.match(item["text"])]
        assert ids[item["agency"]] in {s.agency_id for s in spans}, f"the matcher misses {item['agency']}"
        score = scorer.score_post(item["text"], None, spans)[ids[item["agency"]]]
        agrees = sign(score.trust) == item["label"]
        if item["label"] == 0:
            neutral += 1
            neutral_hits += agrees
        else:
            polar += 1
            polar_hits += agrees
            vader_hits += sign(scorer.sentiment(item["text"])) == item["label"]
        if not agrees:
            misses.append(f"  label {item['label']:+d} trust {score.trust:+.2f} [{item['agency']}] {item['text'][:90]}")
    agreement = polar_hits / polar
    print(f"\ntrust sign agreement on {polar} polar posts: {agreement:.3f} "
          f"(whole-text VADER alone: {vader_hits / polar:.3f}); neutral posts within ±{NEUTRAL_BAND}: "
          f"{neutral_hits}/{neutral}")
    print("misses:\n" + "\n".join(misses))
    assert agreement >= 0.75


def test_each_agency_is_scored_on_its_own_sentences(scorer: Scorer) -> None:
    text = ("Huge thanks to Alpha PD for finding my son, so professional. "
            "Beta SO lied to us and covered up the crash. Disgusting.")
    alpha, beta = text.index("Alpha PD"), text.index("Beta SO")
    scores = scorer.score_post(text, None, [MentionSpan(1, alpha, alpha + 8), MentionSpan(2, beta, beta + 7)])
    assert scores[1].trust > 0.5 and scores[2].trust < -0.5
    whole = scorer.score_text(text)
    assert scores[1].trust > whole.trust > scores[2].trust


def test_context_is_the_mention_sentence_and_the_next(scorer: Scorer) -> None:
    text = "Worst week ever. Rain all day.\nCalled Alpha PD about the break-in. Nobody came. The cat is fine."
    start = text.index("Alpha PD")
    assert mention_context(text, [MentionSpan(1, start, start + 8)], []) == (
        "Called Alpha PD about the break-in. Nobody came.")
    # Without offsets (a thread mention) the whole post is the context.
    assert mention_context(text, [MentionSpan(1)], []) == text
    assert scorer.score_post(text, None, [MentionSpan(1, start, start + 8)])[1].trust < -0.3


def test_offsets_point_into_title_and_text(scorer: Scorer) -> None:
    title, body = "Alpha PD did great today", "The weather held up. Unrelated: my landlord is corrupt and a liar."
    scores = scorer.score_post(body, title, [MentionSpan(1, 0, 8)])
    assert scores[1].trust > 0.3


@pytest.mark.parametrize(("text", "expected"), [
    ("I trust the Alpha PD.", 1),
    ("I don't trust the Alpha PD.", -1),
    ("The Alpha PD was not corrupt, they were honest.", 1),
    ("Did not expect that, thank you Alpha PD!", 1),  # a negation does not cross the comma
    ("Alpha PD covered-up the whole thing.", -1),  # a hyphen matches the lexicon's space
    ("Alpha PD kind of took a while.", 0),  # "kind of" is not kindness
])
def test_lexicon_rules(scorer: Scorer, text: str, expected: int) -> None:
    hits = scorer.lexicon.hits(text)
    total = sum(h.weight for h in hits)
    assert sign(total) == expected, hits


def test_question_damps_the_lexicon(scorer: Scorer) -> None:
    asked = sum(h.weight for h in scorer.lexicon.hits("Do you trust Alpha PD?"))
    said = sum(h.weight for h in scorer.lexicon.hits("I trust Alpha PD."))
    assert 0 < asked < said


def test_scores_stay_in_range_and_empty_text_is_neutral(scorer: Scorer) -> None:
    loud = " ".join(["corrupt brutal liars cover-up"] * 50)
    assert -1 <= scorer.score_text(loud).trust < -0.99
    assert scorer.score_text("   ").trust == 0.0 and scorer.score_text("").sentiment == 0.0


def test_lexicon_is_documented_and_signed_by_category() -> None:
    trusting = {"gratitude", "praise", "protection", "honesty and fairness"}
    for category, entries in TRUST_LEXICON.items():
        weights = [w for w in entries.values() if w != 0.0]
        assert weights, category
        assert all((w > 0) == (category in trusting) for w in weights), category
        assert all(-2.0 <= w <= 2.0 for w in weights)
    assert len(flat_lexicon()) > 150


def test_sentence_spans_cover_titles_and_punctuation() -> None:
    text = "Title here\nFirst one. Second one! Third? end"
    assert [text[a:b] for a, b in sentence_spans(text)] == ["Title here", "First one.", "Second one!", "Third?", "end"]
