"""The trust scorer on the second labeled set (issue 19 §5), written blind to the lexicon and never used to
tune it: sign agreement, the confusion matrix and agreement by kind of post, with VADER alone beside each.
docs/ANALYSIS.md quotes these figures; this test fails when the documented figures and the scorer's drift
apart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from trustwatch.analysis.scoring import MentionSpan, Scorer

ROOT = Path(__file__).resolve().parents[1]
LABELED = Path(__file__).parent / "data" / "trust_labeled_independent.yaml"
NEUTRAL_BAND = 0.05
LABELS = (-1, 0, 1)


def sign(value: float) -> int:
    return 0 if abs(value) < NEUTRAL_BAND else (1 if value > 0 else -1)


def evaluate(registry, matcher) -> dict:
    """Agreement and confusion matrices (label -> predicted sign -> count) of the scorer and of VADER."""
    items = yaml.safe_load(LABELED.read_text(encoding="utf-8"))["posts"]
    ids = {e.slug: i for i, e in enumerate(registry.entries)}
    scorer = Scorer()
    trust: Counter = Counter()
    vader: Counter = Counter()
    by_kind: Counter = Counter()  # (kind, "posts" | "trust" | "vader") -> posts, right signs
    for item in items:
        spans = [MentionSpan(ids[m.agency_slug], m.start, m.end) for m in matcher.match(item["text"])]
        assert ids[item["agency"]] in {s.agency_id for s in spans}, f"the matcher misses {item['agency']}"
        score = scorer.score_post(item["text"], None, spans)[ids[item["agency"]]]
        vader_sign = sign(scorer.sentiment(item["text"]))
        trust[(item["label"], sign(score.trust))] += 1
        vader[(item["label"], vader_sign)] += 1
        by_kind[(item["kind"], "posts")] += 1
        by_kind[(item["kind"], "trust")] += sign(score.trust) == item["label"]
        by_kind[(item["kind"], "vader")] += vader_sign == item["label"]

    def agreement(matrix: Counter, labels: tuple[int, ...]) -> float:
        total = sum(matrix[(lab, p)] for lab in labels for p in LABELS)
        return sum(matrix[(lab, lab)] for lab in labels) / total

    return {
        "items": items, "trust": trust, "vader": vader, "by_kind": by_kind,
        "trust_polar": agreement(trust, (-1, 1)), "vader_polar": agreement(vader, (-1, 1)),
        "trust_all": agreement(trust, LABELS), "vader_all": agreement(vader, LABELS),
    }


@pytest.fixture(scope="module")
def result(registry, matcher) -> dict:
    return evaluate(registry, matcher)


def matrix_text(matrix: Counter) -> str:
    rows = ["| label \\ predicted | -1 | 0 | +1 |", "|---|---|---|---|"]
    for lab in LABELS:
        rows.append(f"| {lab:+d} | " if lab else "| 0 | ")
        rows[-1] += (" | ".join(str(matrix[(lab, p)]) for p in LABELS) + " |")
    return "\n".join(rows)


KINDS = ("reply", "sarcasm", "headline", "official", "mixed", "opinion", "question")


def kind_table(by_kind: Counter) -> str:
    """Agreement over all posts of each kind: where the scorer fails, not only how often."""
    rows = ["| kind | posts | trust score | VADER alone |", "|---|---|---|---|"]
    for kind in KINDS:
        n = by_kind[(kind, "posts")]
        rows.append(f"| {kind} | {n} | {by_kind[(kind, 'trust')] / n:.2f} | {by_kind[(kind, 'vader')] / n:.2f} |")
    return "\n".join(rows)


def test_the_set_is_what_its_header_says(result: dict) -> None:
    items = result["items"]
    assert len(items) >= 200
    kinds = Counter(i["kind"] for i in items)
    assert set(kinds) == set(KINDS)
    assert all(i["label"] in LABELS for i in items)
    mixed_texts = Counter(i["text"] for i in items if i["kind"] == "mixed")
    assert sum(1 for n in mixed_texts.values() if n == 2) >= 10  # two agencies, one label each
    header = LABELED.read_text(encoding="utf-8").split("posts:")[0]
    assert "never used to tune" in header.replace("\n#", "")


def test_documented_figures_are_the_scorers(result: dict) -> None:
    print(f"\nindependent set: {len(result['items'])} posts; sign agreement on polar posts: trust "
          f"{result['trust_polar']:.2f}, VADER alone {result['vader_polar']:.2f}; on all posts (neutral "
          f"within ±{NEUTRAL_BAND}): trust {result['trust_all']:.2f}, VADER alone {result['vader_all']:.2f}")
    print("trust score:\n" + matrix_text(result["trust"]))
    print("VADER alone:\n" + matrix_text(result["vader"]))
    print("by kind (agreement over all posts):\n" + kind_table(result["by_kind"]))
    doc = (ROOT / "docs" / "ANALYSIS.md").read_text(encoding="utf-8")
    for figure in (result["trust_polar"], result["vader_polar"], result["trust_all"], result["vader_all"]):
        assert f"{figure:.2f}" in doc
    assert matrix_text(result["trust"]) in doc and matrix_text(result["vader"]) in doc
    assert kind_table(result["by_kind"]) in doc
