"""Text folding and the scan form: how posts and terms are normalized before matching.

Kept apart so that a change to query packing or registry loading never touches the Unicode rules; the
matcher and the registry both key terms through ``match_key``.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass

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


def non_ascii_chars(text: str) -> set[str]:
    """The distinct non-ASCII characters of ``text``; the matcher finds them once per post and hands them to
    both :func:`_quick_scan` and :func:`normalize_text`."""
    return set(_NON_ASCII_RE.findall(text))


def _classify(text: str, chars: set[str] | None = None) -> tuple[dict[str, str], str]:
    """For a non-ASCII text: replacements for one-to-one characters, and the other characters."""
    replace: dict[str, str] = {}
    other = ""
    folds = _CHAR_FOLDS
    for ch in non_ascii_chars(text) if chars is None else chars:
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


def normalize_text(text: str, chars: set[str] | None = None) -> tuple[str, OffsetMap | None]:
    """NFKC + casefold with offsets kept; the map is None when every offset stays the same.

    ASCII is just ``str.lower``; characters that fold one-to-one (emoji, accented letters,
    full-width forms, curly quotes, no-break spaces) are replaced in place.  Only characters that
    fold to another length ("…", "ß", "ﬁ", combining marks) get segments in an offset map.
    Whitespace is kept one for one: the matcher reads every run of spaces and punctuation as a
    word boundary, so a name broken by a single line break still matches.  ``chars``: the text's
    :func:`non_ascii_chars`, when the caller has them already.
    """
    if text.isascii():
        return text.lower(), None
    replace, unsafe = _classify(text, chars)
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


def _quick_scan(text: str, chars: set[str] | None = None) -> str | None:
    """Scan form straight from the original text, or None when that needs the full normalization first.

    Equal to ``_scan_form(normalize_text(text)[0])`` whenever it returns a string: ASCII text, and text whose
    non-ASCII characters each stand for one Latin-1 character in scan form (emoji, curly quotes, dashes, no-break
    spaces, full-width forms, accented Latin letters), which covers most posts.  The matcher then normalizes only
    the posts it finds a term in.  ``chars``: the text's :func:`non_ascii_chars`, when the caller has them.
    """
    scan = _quick_scan_latin1(text, chars)
    return None if scan is None else scan.decode("latin-1")


def _quick_scan_latin1(text: str, chars: set[str] | None = None) -> bytes | None:
    """:func:`_quick_scan` encoded in Latin-1, one byte per character, as the matcher's automatons read it."""
    if text.isascii():
        return b" " + text.encode("ascii").translate(_SCAN_TABLE) + b" "
    stand_ins = _SCAN_CHARS
    for ch in non_ascii_chars(text) if chars is None else chars:
        stand_in = stand_ins[ch] if ch in stand_ins else _scan_char(ch)
        if not stand_in:
            return None
        if ch > "\xff":
            text = text.replace(ch, stand_in)
    return b" " + text.encode("latin-1").translate(_SCAN_TABLE) + b" "


def match_key(term: str) -> str:
    """The core of a term's automaton key: normalized, in scan form, trimmed ("L.A.P.D." -> "l a p d")."""
    return _scan_form(normalize_term(term)).strip()
