"""Corpus stage: raw source files -> cleaned policy documents, as each document's profile says.

Cleaning removes web debris, repairs mojibake and markdown escapes, and marks headings; it never
changes the words of a clause (tests/test_corpus.py proves every clause is found in its source).
The cleaned files are committed under corpus/; `policyqa corpus` regenerates them from
corpus/sources/ and a test fails if the two drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import unicodedata

import ftfy

from ._errors import CorpusError
from ._profiles import PolicyProfile, load_profiles

SOURCES = "sources"
CHAT_GLOSSARY = "chat_glossary.json"


_DEBRIS_LINES = {"Skip to content", "Contact Us", "图片"}
_DEBRIS_RE = re.compile(r"^\[contact-form-7 [^\]]*\]$")
_MD_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_MD_LINK_RE = re.compile(r"\[([^\]\n]+)\]\((?:https?://|/)[^)\s]*\)")
_INLINE_BULLET_RE = re.compile(r"(?<=\S)[ \t]*\*[ \t]+(?=[a-z]\.[ \t])")
_SETEXT_RE = re.compile(r"^\s*(=+|-+)\s*$")
_ITALIC_RE = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def clean_source(raw: str, profile: PolicyProfile) -> str:
    """Turn one raw source text into the cleaned text of one document, as its profile's `source` says."""
    source = profile.source
    text = ftfy.fix_encoding(raw).replace("\r\n", "\n").replace("\u00a0", " ")
    text = _cut(text, profile)
    for old, new in source.repairs:
        if text.count(old) != 1:
            raise CorpusError(f"{profile.path}: repair {old!r} matched {text.count(old)} times, expected once",
                              document_id=profile.document_id)
        text = text.replace(old, new)
    lines = [line.rstrip() for line in text.split("\n")]
    lines = [line for line in lines if not _is_debris(line)]
    while lines and lines[-1].strip() in {*source.drop_lines, ""}:
        lines.pop()
    if source.markdown:
        lines = _clean_markdown(lines)
    return _squeeze_blank_lines(_with_title(lines, profile))


def _cut(text: str, profile: PolicyProfile) -> str:
    source = profile.source
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if source.begin and line.strip() == source.begin]
    ends = [i for i, line in enumerate(lines) if source.end and line.strip() == source.end]
    if (source.begin and len(starts) != 1) or (source.end and len(ends) != 1):
        raise CorpusError(f"{profile.path}: cannot find where the document begins or ends in its source",
                          document_id=profile.document_id)
    first = starts[0] if starts else 0
    last = ends[0] if ends else len(lines)
    return "\n".join(lines[first:last])


def _is_debris(line: str) -> bool:
    stripped = line.strip()
    return stripped in _DEBRIS_LINES or bool(_DEBRIS_RE.match(stripped))


def _clean_markdown(lines: list[str]) -> list[str]:
    """Setext headings become '#'-headings (level 3 where the source set them in bold), escapes and
    emphasis go, list items glued to a paragraph get their own line, and a heading repeated
    several times on one line is written once."""
    out: list[str] = []
    for line in lines:
        match = _SETEXT_RE.match(line)
        if match and out and out[-1].strip() and not out[-1].startswith("#"):
            heading = out.pop()
            bold = heading.strip().startswith("**")
            level = 1 if match.group(1).startswith("=") else (3 if bold else 2)
            out.append("#" * level + " " + _heading_text(heading))
            continue
        if match:  # an underline with no heading above it: debris
            continue
        out.append(line)
    text = "\n".join(out)
    text = _MD_LINK_RE.sub(r"\1", text)
    text = _MD_ESCAPE_RE.sub(r"\1", text).replace("\\", "")
    text = _INLINE_BULLET_RE.sub("\n* ", text)
    text = text.replace("**", "")
    text = _ITALIC_RE.sub(r"\1", text)
    return [line.rstrip() for line in text.split("\n")]


def _heading_text(line: str) -> str:
    text = _MD_ESCAPE_RE.sub(r"\1", line).replace("*", "").strip()
    words = text.split()
    for parts in range(len(words), 1, -1):  # "Cyberbullying Cyberbullying Cyberbullying" -> "Cyberbullying"
        if len(words) % parts == 0:
            size = len(words) // parts
            chunks = {" ".join(words[i : i + size]) for i in range(0, len(words), size)}
            if len(chunks) == 1:
                return chunks.pop()
    return text


def _with_title(lines: list[str], profile: PolicyProfile) -> list[str]:
    """Every corpus file opens with its document's title as a '#' heading, whatever its source had."""
    source = profile.source
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].startswith("#") and lines[first].lstrip("#").strip() == source.begin:
        return lines[:first] + [f"# {source.begin}"] + lines[first + 1 :]
    if first is not None and lines[first].startswith("# "):
        return lines
    if first is not None and lines[first].strip() == source.title_line:
        return lines[:first] + [f"# {source.title_line}"] + lines[first + 1 :]
    return [f"# {profile.title}", ""] + lines


def _squeeze_blank_lines(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        if not line.strip():
            if out and out[-1] == "":
                continue
            out.append("")
        else:
            out.append(line)
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out).rstrip() + "\n"


def build_corpus(corpus_dir: Path) -> list[PolicyProfile]:
    """Clean every document's source (corpus/sources/, as its profile says) into corpus/<document>.txt.

    Raises:
        CorpusError: a profile is invalid, a source file is missing or its structure changed.
    """
    profiles = load_profiles(corpus_dir)
    for profile in profiles:
        path = corpus_dir / SOURCES / profile.source.file
        if not path.is_file():
            raise CorpusError(f"{profile.path}: source file {path} is missing", document_id=profile.document_id)
        cleaned = clean_source(path.read_text(encoding="utf-8"), profile)
        (corpus_dir / profile.corpus_file).write_text(cleaned, encoding="utf-8")
    return profiles


def load_documents(corpus_dir: Path) -> list[tuple[PolicyProfile, str]]:
    """Every document's profile (corpus/profiles/) and cleaned text.

    Raises:
        CorpusError: a profile is invalid, or a document is missing or unreadable.
    """
    out = []
    for profile in load_profiles(corpus_dir):
        path = corpus_dir / profile.corpus_file
        try:
            out.append((profile, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"cannot read corpus file {path} (named by {profile.path}): {exc}",
                              document_id=profile.document_id) from exc
    return out


_QUOTE_CHARS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2032": "'"})


def normalise_for_match(text: str) -> str:
    """The one normalisation used to match a quote to a clause (gold data, example data, reports):
    NFKC, mojibake repaired, curly quotes straightened, backslashes and asterisks removed,
    whitespace collapsed, case folded."""
    text = unicodedata.normalize("NFKC", ftfy.fix_encoding(text)).translate(_QUOTE_CHARS)
    text = text.replace("\\", "").replace("*", "")
    return " ".join(text.split()).casefold()
