"""Which posts the English scorer may read: VADER and the trust lexicon are English word lists.

A German or Japanese post read by them scores near zero, or worse, scores on the odd English loanword, and
would pull an agency's mean toward neutral.  Such posts are left unscored (a ``post_scores`` row with no
numbers and the reason ``language:<code>``) and counted apart in the rollups.

X labels every post with a BCP 47 code (``lang``); its own codes for "no linguistic content" (``zxx``),
"undetermined" (``und``) and the media/hashtag/cashtag/mention-only ones (``qme``, ``qht``, ``qct``, ``qam``,
``qst``) are not a language, so those posts are read by the detector like Reddit posts, which carry no
language at all.  The detector is py3langid (langid.py's maintained fork: offline, a bundled model, about
4,000 short texts per second): it decides "not English" only when it is at least
:data:`MIN_CONFIDENCE` sure, so short and ambiguous posts stay scored as before.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

#: X's codes that name no language (X API v2 docs, "lang" field; Twitter's language identifiers).
NO_LANGUAGE = frozenset({"und", "zxx", "qme", "qht", "qct", "qam", "qst", "art"})
#: The detector's probability needed to call a post not English.
MIN_CONFIDENCE = 0.8


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from pathlib import Path

    import py3langid.langid as langid

    return langid.LanguageIdentifier.from_modelpath(Path(langid.MODEL_DIR) / langid.MODEL_FILE, norm_probs=True)


def detect(text: str) -> str | None:
    """The language code of ``text`` when the detector is sure enough, else None."""
    if not text.strip():
        return None
    code, probability = _identifier().classify(text)
    return str(code) if probability >= MIN_CONFIDENCE else None


def unscored_language(lang: str | None, text: str) -> str | None:
    """The language that keeps this post from being scored, or None when it is (or may be) English."""
    code = (lang or "").strip().lower()
    if code and code not in NO_LANGUAGE:
        primary = code.split("-")[0]
        return None if primary == "en" else primary
    detected = detect(text)
    return None if detected in (None, "en") else detected
