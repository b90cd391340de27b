"""Checks on what users type or paste, shared by search, ask and judge.

Bad input gets a clear InvalidInputError instead of a guess: a citation must cover what was asked.
"""

from __future__ import annotations

import re
import unicodedata

from ._errors import InvalidInputError

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
"""Invisible characters a paste can be made of (a BOM, zero-width spaces and joiners): with
nothing else around them the text is empty, however long it looks."""

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
"""Lone surrogates: what `surrogateescape` makes of invalid UTF-8 in argv, or a JSON "\\ud800"
escape; the only code points UTF-8 cannot encode, and the tokenizer's TypeError (issue 13)."""


def check_text(text: object, *, max_chars: int, what: str = "query") -> str:
    """Return `text` with whitespace and zero-width characters stripped from both ends, or raise
    InvalidInputError saying what is wrong with it, naming `what` ("query", "question", "message").

    Undecodable input is repaired, not refused: invalid UTF-8 bytes and lone surrogates become
    U+FFFD, so one stray byte in a pasted message costs that character, not the message. Text
    that is then mostly junk is refused as binary: more than 5% (and more than one) replacement
    or control characters, any NUL, or nothing but them.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise InvalidInputError(f"the {what} must be text, not {type(text).__name__}")
    stripped = _strip(_SURROGATE_RE.sub("\ufffd", text))
    if not stripped:
        raise InvalidInputError(f"the {what} is empty; type a question or paste a message")
    if len(stripped) > max_chars:
        raise InvalidInputError(
            f"the {what} is {len(stripped):,} characters; the limit is {max_chars:,}. "
            f"Split it into smaller parts so every part can be cited."
        )
    odd = sum(1 for ch in stripped if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS))
    readable = sum(1 for ch in stripped if ch != "\ufffd" and not ch.isspace() and unicodedata.category(ch) not in {"Cc", "Cf"})
    if "\x00" in stripped or not readable or odd > max(1.0, 0.05 * len(stripped)):
        raise InvalidInputError(f"the {what} looks like binary data, not text")
    return stripped


def _strip(text: str) -> str:
    """`text` without whitespace or zero-width characters at either end (str.strip knows only one kind at a time)."""
    while (shorter := text.strip().strip(_ZERO_WIDTH)) != text:
        text = shorter
    return text


_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
"""Latin sentence ends need a following space ("12.5" is no end); Chinese ones need none."""


def split_sentences(text: str) -> list[str]:
    """Sentences of a message, each a verbatim substring of it."""
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if _strip(s)]

