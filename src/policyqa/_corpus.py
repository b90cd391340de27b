"""Corpus stage: raw source files -> cleaned policy documents + manifest.

Cleaning removes web debris, repairs mojibake and markdown escapes, and marks headings; it never
changes the words of a clause (tests/test_corpus.py proves every clause is found in its source).
The cleaned files are committed under corpus/; `policyqa corpus` regenerates them from
corpus/sources/ and a test fails if the two drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import unicodedata

import ftfy

from ._errors import CorpusError
from ._models import PolicyDocument

MANIFEST = "manifest.json"
SOURCES = "sources"
CHAT_GLOSSARY = "chat_glossary.json"


@dataclass(frozen=True)
class _Source:
    """How to cut one policy document out of one source file."""

    document: PolicyDocument
    markdown: bool
    begin: str | None = None  # the document starts at this line (inclusive), else at the file start
    end: str | None = None  # and stops before this line, else at the file end
    repairs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    drop_lines: tuple[str, ...] = ()
    title_line: str | None = None  # the source's own title line, promoted to the '#' heading


def _doc(document_id: str, title: str, publisher: str, product: str, date: str | None, source: str, note: str = "",
         scope_pattern: str | None = None) -> PolicyDocument:
    return PolicyDocument(
        scope_pattern=scope_pattern,
        document_id=document_id,
        title=title,
        publisher=publisher,
        product=product,
        date_given=date,
        source_file=source,
        corpus_file=f"{document_id}.txt",
        note=note,
    )


_AUP_FILE = "001_31931f9c0a3c4fe9.txt"

SOURCES_TABLE: tuple[_Source, ...] = (
    _Source(
        _doc("weixin-standards", "Standards of Weixin Account Usage", "Tencent", "Weixin", "2024-10-24",
             "000_ab84435bec418a5c.txt", "Updated and effective 24 October 2024."),
        markdown=False,
        # The closing signature repeats the publisher's name; it is not a clause.
        drop_lines=("Tencent",),
    ),
    _Source(
        _doc("wechat-aup", "WeChat Acceptable Use Policy", "Tencent (WeChat)", "WeChat", "2023-08-01", _AUP_FILE,
             "First of two documents in its source file."),
        markdown=True,
        end="WeChat Community Guidelines",
    ),
    _Source(
        _doc("wechat-community-guidelines", "WeChat Community Guidelines", "Tencent (WeChat)", "WeChat", None, _AUP_FILE,
             "Second of two documents in its source file; the text gives no date."),
        markdown=True,
        begin="WeChat Community Guidelines",
        # Two headings are glued to the end of the preceding list item in the source.
        repairs=(
            ("violent demonstrations. Violence and threats",
             "violent demonstrations.\n\n**Violence and threats**\n--------"),
            ("individuals.  Violation of personal data privacy", "individuals.\n\nViolation of personal data privacy"),
        ),
    ),
    _Source(
        _doc("wecom-penalties", "WeCom Violation Scenarios and Penalty Rules", "Tencent (WeCom)", "WeCom", None,
             "002_ce979b4dab54efd5.txt", "The text gives no date.",
             scope_pattern=r"\b(wecom|enterprise|corporate|compan(y|ies)|employees?|member accounts?|external contacts?)\b|企业微信|企微|企業微信|员工|員工|外部联系人|客户群"),
        markdown=False,
        title_line="WeCom – Violation scenarios and penalty rules",
    ),
    _Source(
        _doc("wechat-contraband-notice", "WeChat Notice on Illegal and Contraband Goods", "WeChat Security Center, as reported by a third-party article",
             "WeChat", "2019-03 (implied: 'Since January 2019 ... it's only March')", "003_3a87f136b463c83c.txt",
             "A news article quoting WeChat's notice; some paragraphs are the article's own commentary."),
        markdown=False,
    ),
    _Source(
        _doc("wechat-community-guidelines-intro", "WeChat Community Guidelines: Introduction (official English text)",
             "Tencent (WeChat)", "WeChat", None, "004_b2a1f6eb0620e9a4.txt",
             "Another rendering of the introduction in wechat-community-guidelines; kept separately for provenance."),
        markdown=True,
    ),
)

_DEBRIS_LINES = {"Skip to content", "Contact Us", "图片"}
_DEBRIS_RE = re.compile(r"^\[contact-form-7 [^\]]*\]$")
_MD_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_MD_LINK_RE = re.compile(r"\[([^\]\n]+)\]\((?:https?://|/)[^)\s]*\)")
_INLINE_BULLET_RE = re.compile(r"(?<=\S)[ \t]*\*[ \t]+(?=[a-z]\.[ \t])")
_SETEXT_RE = re.compile(r"^\s*(=+|-+)\s*$")
_ITALIC_RE = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def clean_source(raw: str, source: _Source) -> str:
    """Turn one raw source text into the cleaned text of one document."""
    text = ftfy.fix_encoding(raw).replace("\r\n", "\n").replace("\u00a0", " ")
    text = _cut(text, source)
    for old, new in source.repairs:
        if text.count(old) != 1:
            raise CorpusError(f"repair {old!r} matched {text.count(old)} times, expected once", document_id=source.document.document_id)
        text = text.replace(old, new)
    lines = [line.rstrip() for line in text.split("\n")]
    lines = [line for line in lines if not _is_debris(line)]
    while lines and lines[-1].strip() in {*source.drop_lines, ""}:
        lines.pop()
    if source.markdown:
        lines = _clean_markdown(lines)
    return _squeeze_blank_lines(_with_title(lines, source))


def _cut(text: str, source: _Source) -> str:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if source.begin and line.strip() == source.begin]
    ends = [i for i, line in enumerate(lines) if source.end and line.strip() == source.end]
    if (source.begin and len(starts) != 1) or (source.end and len(ends) != 1):
        raise CorpusError("cannot find where the document begins or ends in its source", document_id=source.document.document_id)
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


def _with_title(lines: list[str], source: _Source) -> list[str]:
    """Every corpus file opens with its document's title as a '#' heading, whatever its source had."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].startswith("#") and lines[first].lstrip("#").strip() == source.begin:
        return lines[:first] + [f"# {source.begin}"] + lines[first + 1 :]
    if first is not None and lines[first].startswith("# "):
        return lines
    if first is not None and lines[first].strip() == source.title_line:
        return lines[:first] + [f"# {source.title_line}"] + lines[first + 1 :]
    return [f"# {source.document.title}", ""] + lines


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


def build_corpus(corpus_dir: Path) -> list[PolicyDocument]:
    """Clean every source under corpus_dir/sources and write the documents and the manifest.

    Raises:
        CorpusError: a source file is missing or its structure changed.
    """
    documents = []
    for source in SOURCES_TABLE:
        path = corpus_dir / SOURCES / source.document.source_file
        if not path.is_file():
            raise CorpusError(f"source file {path} is missing", document_id=source.document.document_id)
        cleaned = clean_source(path.read_text(encoding="utf-8"), source)
        (corpus_dir / source.document.corpus_file).write_text(cleaned, encoding="utf-8")
        documents.append(source.document)
    manifest = [doc.model_dump() for doc in documents]
    (corpus_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return documents


def load_documents(corpus_dir: Path) -> list[tuple[PolicyDocument, str]]:
    """Read the manifest and each cleaned document's text.

    Raises:
        CorpusError: the manifest or a document is missing or unreadable.
    """
    manifest_path = corpus_dir / MANIFEST
    try:
        entries = json.loads(manifest_path.read_text(encoding="utf-8"))
        documents = [PolicyDocument.model_validate(entry) for entry in entries]
    except FileNotFoundError as exc:
        raise CorpusError(f"no corpus manifest at {manifest_path}; run `policyqa corpus` to build it") from exc
    except (ValueError, TypeError) as exc:
        raise CorpusError(f"corpus manifest {manifest_path} is invalid: {exc}") from exc
    out = []
    for doc in documents:
        path = corpus_dir / doc.corpus_file
        try:
            out.append((doc, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"cannot read corpus file {path}: {exc}", document_id=doc.document_id) from exc
    return out


_QUOTE_CHARS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2032": "'"})


def normalise_for_match(text: str) -> str:
    """The one normalisation used to match a quote to a clause (gold data, example data, reports):
    NFKC, mojibake repaired, curly quotes straightened, backslashes and asterisks removed,
    whitespace collapsed, case folded."""
    text = unicodedata.normalize("NFKC", ftfy.fix_encoding(text)).translate(_QUOTE_CHARS)
    text = text.replace("\\", "").replace("*", "")
    return " ".join(text.split()).casefold()
