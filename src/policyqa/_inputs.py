"""Checks on what users type or paste, shared by search, ask and judge.

Bad input gets a clear InvalidInputError instead of a guess: a citation must cover what was asked.
"""

from __future__ import annotations

import re
import unicodedata

from ._errors import InvalidInputError

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def check_text(text: object, *, max_chars: int, what: str = "query") -> str:
    """Return `text` stripped, or raise InvalidInputError saying what is wrong with it."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"the {what} is not UTF-8 text (it looks like binary data)") from exc
    if not isinstance(text, str):
        raise InvalidInputError(f"the {what} must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError(f"the {what} is empty; type a question or paste a message")
    if len(stripped) > max_chars:
        raise InvalidInputError(
            f"the {what} is {len(stripped):,} characters; the limit is {max_chars:,}. "
            f"Split it into smaller parts so every part can be cited."
        )
    odd = sum(1 for ch in stripped if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS))
    if "\x00" in stripped or odd / len(stripped) > 0.05:
        raise InvalidInputError(f"the {what} looks like binary data, not text")
    return stripped


_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
"""Latin sentence ends need a following space ("12.5" is no end); Chinese ones need none."""


def split_sentences(text: str) -> list[str]:
    """Sentences of a message, each a verbatim substring of it."""
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s and s.strip()]

