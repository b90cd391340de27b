"""Clause stage: cleaned policy documents -> a flat list of citable clauses.

Each format family (numbered standards, numbered sections with lettered lists, headed lists, penalty
rules with FAQs, notices) has its own small parser function, registered by family name; a document's
profile (corpus/profiles/) names its family. All of them emit clauses through `_Builder`, which keeps
ids unique, resolves parents, records offsets and labels stances with the profile's rules.
Clause ids follow the document's own numbering (`weixin-standards/II.8.3`, `wechat-aup/7.2.b`) and
fall back to slugs of headings where the document has no numbers
(`wechat-community-guidelines/fraud-or-scams/a.1`, `wecom-penalties/rule-3/use-plug-in`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Callable

from ._errors import CorpusError
from ._models import Clause, ClauseKind, Stance
from ._profiles import PolicyProfile

_TERMINAL = (".", ";", ":", "!", "?", "\u201d", '"', ")")
_ROMAN = {"I": "I", "II": "II", "III": "III", "IV": "IV", "V": "V", "VI": "VI", "VII": "VII",
          "VIII": "VIII", "IX": "IX", "X": "X", "XI": "XI", "Ⅺ": "XI"}


@dataclass
class _Line:
    start: int  # offset of the first non-blank character
    end: int  # offset just past the last non-blank character
    text: str  # the stripped line
    indent: int


def _lines(text: str) -> list[_Line]:
    out, offset = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            out.append(_Line(offset + lead, offset + lead + len(stripped), stripped, lead))
        offset += len(raw) + 1
    return out


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _is_title(text: str, max_len: int = 80) -> bool:
    """A short line with no sentence punctuation at its end reads as a heading, not a clause."""
    return len(text) <= max_len and not text.endswith(_TERMINAL) and ":" not in text


@dataclass
class _Draft:
    local_id: str
    start: int
    end: int
    heading_path: tuple[str, ...]
    parent: str | None
    kind: ClauseKind


@dataclass
class _Builder:
    document: PolicyProfile
    text: str
    drafts: dict[str, _Draft] = field(default_factory=dict)

    def add(self, local_id: str, line: _Line, heading_path: list[str], *, parent: str | None = None,
            kind: ClauseKind = "paragraph", skip: int = 0) -> str:
        """Record a clause whose text is `line` minus its first `skip` characters (a bullet glyph)."""
        if local_id in self.drafts:
            raise CorpusError(f"duplicate clause id {self.document.document_id}/{local_id}",
                              document_id=self.document.document_id, clause_id=local_id)
        start = line.start + skip
        while start < line.end and self.text[start].isspace():
            start += 1
        self.drafts[local_id] = _Draft(local_id, start, line.end, tuple(heading_path), parent, kind)
        return local_id

    def extend(self, local_id: str, line: _Line) -> None:
        """A continuation line belongs to the clause before it."""
        self.drafts[local_id].end = line.end

    def clauses(self) -> list[Clause]:
        doc = self.document
        out: list[Clause] = []
        stances: dict[str, Stance] = {}
        for draft in self.drafts.values():
            parent = draft.parent if draft.parent in self.drafts else None
            parent_text = self.text[self.drafts[parent].start : self.drafts[parent].end] if parent else ""
            clause_text = self.text[draft.start : draft.end]
            clause_id = f"{doc.document_id}/{draft.local_id}"
            out.append(Clause(
                clause_id=clause_id,
                document_id=doc.document_id,
                document_title=doc.title,
                heading_path=draft.heading_path,
                text=clause_text,
                parent_id=f"{doc.document_id}/{parent}" if parent else None,
                parent_text=parent_text,
                start=draft.start,
                end=draft.end,
                kind=draft.kind,
                stance=label_stance(draft.local_id, clause_text, draft.kind, stances.get(parent or ""), doc),
                products=doc.products,
            ))
            stances[draft.local_id] = out[-1].stance
        return out


# --- Weixin account standards: Roman sections, dotted numbers, "Example N:" paragraphs ---------------

_ROMAN_RE = re.compile(r"^(Ⅺ|[IVX]+)\.\s+(.+)$")
_DOTTED_RE = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(.+)$")
_EXAMPLE_RE = re.compile(r"^(?:Example (\d+)|For example)\s*:\s*(.*)$")


Parse = Callable[["_Builder"], None]
PARSERS: dict[str, Parse] = {}
"""Format family -> the function that reads it; a profile names its family (`parser = "..."`)."""


def parser(family: str) -> Callable[[Parse], Parse]:
    """Register a parser under its format family's name."""
    def register(parse: Parse) -> Parse:
        PARSERS[family] = parse
        return parse
    return register


@parser("numbered-standards")
def _parse_numbered_standards(b: _Builder) -> None:
    """Roman sections, dotted numbers and "Example N:" paragraphs (the Weixin account standards)."""
    roman = "preamble"
    in_preamble = True
    headings: dict[str, str] = {}  # number-path -> heading text, within the current Roman section
    current: str | None = None  # the clause a continuation line would extend
    owner: str = roman  # the clause an example or extra paragraph belongs to
    paragraphs: dict[str, int] = {}
    in_example = False

    def path_for(number: str | None) -> list[str]:
        path = [headings["__roman__"]] if "__roman__" in headings else []
        if number:
            parts = number.split(".")
            path += [headings[".".join(parts[:i])] for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in headings]
        return path

    def add_paragraph(line: _Line, number: str | None) -> str:
        base = f"{roman}.{number}" if number else roman
        count = paragraphs.get(base, 0) + 1
        paragraphs[base] = count
        local = base if count == 1 else f"{base}/p{count}"
        return b.add(local, line, path_for(number), parent=base if count > 1 else _nearest_ancestor(b, base))

    number_of_owner: str | None = None
    for line in _lines(b.text)[1:]:  # the first line is the document title
        text = line.text
        roman_match = _ROMAN_RE.match(text)
        if roman_match and line.indent == 0:
            roman, in_preamble = _ROMAN[roman_match.group(1)], False
            headings = {"__roman__": text}
            current, owner, number_of_owner, in_example = None, roman, None, False
            continue
        if in_preamble and _is_title(text, 60) and text[0].isupper():
            roman_slug = slugify(text)
            headings = {"__roman__": text}
            roman = roman_slug
            current, owner, number_of_owner, in_example = None, roman, None, False
            continue
        if line.indent >= 4 and owner in b.drafts:
            # Deeply indented auto-numbered captions ("1. Tencent Customer Service Mini Program") are
            # sub-items of the clause above; image placeholders between them were removed as debris.
            children = sum(1 for k in b.drafts if k.startswith(f"{owner}.") and k.count(".") == owner.count(".") + 1)
            b.add(f"{owner}.{children + 1}", line, path_for(number_of_owner), parent=owner, kind="item",
                  skip=len(text) - len(re.sub(r"^\d+\.\s*", "", text)))
            continue
        if text[0].islower() and current:
            b.extend(current, line)
            continue
        example = _EXAMPLE_RE.match(text)
        if example and current:
            host = owner
            if not example.group(2):
                continue  # "For example:" followed only by an image
            local = f"{host}/example-{example.group(1)}" if example.group(1) else f"{host}/example"
            current = b.add(local, line, path_for(number_of_owner), parent=host, kind="example")
            in_example = True
            continue
        dotted = _DOTTED_RE.match(text)
        if dotted and not in_preamble:
            number = dotted.group(1)
            local = f"{roman}.{number}"
            while local in b.drafts or f"{local}#heading" in headings:
                # The source's list auto-numbering repeats "1." for consecutive headings (section VI).
                number = ".".join(number.split(".")[:-1] + [str(int(number.split(".")[-1]) + 1)])
                local = f"{roman}.{number}"
            if _is_title(dotted.group(2)):
                headings[number] = text
                headings[f"{local}#heading"] = text
                current, owner, number_of_owner, in_example = None, local, number, False
                continue
            parents = number.split(".")
            parent = next((f"{roman}.{'.'.join(parents[:i])}" for i in range(len(parents) - 1, 0, -1)
                           if f"{roman}.{'.'.join(parents[:i])}" in b.drafts), roman if roman in b.drafts else None)
            current = b.add(local, line, path_for(".".join(parents[:-1])), parent=parent, kind="item")
            owner, number_of_owner, in_example = local, ".".join(parents[:-1]) or None, False
            paragraphs[local] = 1
            continue
        if in_example and current:
            b.extend(current, line)  # a second example sentence under "For example:"
            continue
        current = add_paragraph(line, number_of_owner if owner != roman else None) if owner in (roman, f"{roman}.{number_of_owner}") \
            else _owned_paragraph(b, owner, line, paragraphs, path_for(number_of_owner))
        owner = current.split("/p")[0]


def _nearest_ancestor(b: _Builder, local: str) -> str | None:
    head, _, tail = local.partition(".")
    parts = tail.split(".") if tail else []
    for size in range(len(parts) - 1, -1, -1):
        candidate = ".".join([head, *parts[:size]]) if size else head
        if candidate in b.drafts:
            return candidate
    return None


def _owned_paragraph(b: _Builder, owner: str, line: _Line, paragraphs: dict[str, int], path: list[str]) -> str:
    count = paragraphs.get(owner, 1) + 1
    paragraphs[owner] = count
    return b.add(f"{owner}/p{count}", line, path, parent=owner)


# --- Markdown documents: the AUP and the Community Guidelines --------------------------------------

_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+)$")
_AUP_SUB_RE = re.compile(r"^(\d+(?:\.\d+)+)\s+(.+)$")
_AUP_SECTION_RE = re.compile(r"^(\d+)\.\s+(.+)$")
_STAR_LETTER_RE = re.compile(r"^\*\s+([a-z])\.\s")
_LETTER_RE = re.compile(r"^\(?([a-z])\)\s")
_NUMBER_RE = re.compile(r"^(\d+)\)\s")


@parser("numbered-sections")
def _parse_numbered_sections(b: _Builder) -> None:
    """Markdown sections numbered "1.", subsections "1.2", and "* a." lettered lists (the AUP)."""
    section = "preamble"
    path: list[str] = []
    owner = section  # numbered subsection (or section) that letters and paragraphs belong to
    last_paragraph: str | None = None
    counts: dict[str, int] = {}
    for line in _lines(b.text)[1:]:
        heading = _HEADING_RE.match(line.text)
        if heading:
            title = heading.group(2)
            numbered = _AUP_SECTION_RE.match(title)
            section = numbered.group(1) if numbered else slugify(title)
            path, owner, last_paragraph = [title], section, None
            continue
        letter = _STAR_LETTER_RE.match(line.text)
        if letter:
            b.add(f"{owner}.{letter.group(1)}", line, path, parent=last_paragraph or owner, kind="item", skip=2)
            continue
        sub = _AUP_SUB_RE.match(line.text)
        if sub and sub.group(1).split(".")[0] == section:
            owner = sub.group(1)
            if _is_title(sub.group(2)):
                path, last_paragraph = path[:1] + [line.text], None
                continue
            path = path[:1]
            last_paragraph = b.add(owner, line, path, parent=section if section in b.drafts else None, kind="item")
            counts[owner] = 1
            continue
        count = counts.get(owner, 0) + 1
        counts[owner] = count
        local = owner if count == 1 else f"{owner}/p{count}"
        last_paragraph = b.add(local, line, path, parent=None if count == 1 else owner)


@parser("headed-lists")
def _parse_headed_lists(b: _Builder) -> None:
    """Community Guidelines: sections and subsections are headings; each holds paragraphs, bullets
    ("* You may not ..."), lettered items under a bullet, and numbered sub-items under a letter."""
    nodes: list[tuple[str, _Line, list[str], str, int, str | None, str | None]] = []
    slug, path = "introduction", []
    paragraph_n = bullet_n = 0
    letter: str | None = None
    for line in _lines(b.text)[1:]:
        heading = _HEADING_RE.match(line.text)
        if heading:
            level, title = len(heading.group(1)), heading.group(2)
            path = path[: max(level - 2, 0)] + [title]
            slug, paragraph_n, bullet_n, letter = slugify(title), 0, 0, None
            continue
        if line.text.startswith("* "):
            bullet_n += 1
            letter = None
            nodes.append(("bullet", line, list(path), slug, bullet_n, None, None))
            continue
        lettered = _LETTER_RE.match(line.text)
        if lettered:
            letter = lettered.group(1)
            nodes.append(("letter", line, list(path), slug, bullet_n, letter, None))
            continue
        numbered = _NUMBER_RE.match(line.text)
        if numbered and letter:
            nodes.append(("number", line, list(path), slug, bullet_n, letter, numbered.group(1)))
            continue
        paragraph_n += 1
        bullet_n, letter = bullet_n, None
        nodes.append(("paragraph", line, list(path), slug, paragraph_n, None, None))

    # Letters restart under each bullet; name the bullet in the id only where a section has several lists.
    lists_per_section: dict[str, set[int]] = {}
    for kind, _, _, slug, bullet, _, _ in nodes:
        if kind == "letter":
            lists_per_section.setdefault(slug, set()).add(bullet)

    def letter_id(slug: str, bullet: int, letter: str) -> str:
        return f"{slug}/b{bullet}.{letter}" if len(lists_per_section[slug]) > 1 else f"{slug}/{letter}"

    for kind, line, path, slug, n, letter, number in nodes:
        if kind == "paragraph":
            b.add(f"{slug}/p{n}", line, path, parent=f"{slug}/p1" if n > 1 else None)
        elif kind == "bullet":
            b.add(f"{slug}/b{n}", line, path, parent=f"{slug}/p1", kind="item", skip=2)
        elif kind == "letter":
            b.add(letter_id(slug, n, letter), line, path, parent=f"{slug}/b{n}", kind="item")
        else:
            parent = letter_id(slug, n, letter)
            b.add(f"{parent}.{number}", line, path, parent=parent, kind="item")


# --- WeCom penalty rules -------------------------------------------------------------------------

_WECOM_SECTION_RE = re.compile(r"^(\d)\.\s+(.+)$")
_WECOM_SUB_RE = re.compile(r"^(\d\.\d)\s+(.+)$")
_BULLET_GLYPH = "•"


@parser("penalty-rules")
def _parse_penalty_rules(b: _Builder) -> None:
    """Numbered "Penalty rule #N" sections with violations and punishments, then FAQs (WeCom)."""
    section, sub = "", ""
    path: list[str] = []
    counters: dict[str, int] = {}
    pending_title: tuple[str, _Line] | None = None  # a violation type waiting for its description
    intro: dict[str, str] = {}  # scope -> the latest paragraph, which introduces the items after it

    def next_n(key: str) -> int:
        counters[key] = counters.get(key, 0) + 1
        return counters[key]

    for line in _lines(b.text)[1:]:
        text = line.text
        sec = _WECOM_SECTION_RE.match(text)
        if sec and line.indent == 0:
            rule = re.search(r"#(\d+)", sec.group(2))
            section = f"rule-{rule.group(1)}" if rule else ("faq" if "problem" in sec.group(2).lower() else slugify(sec.group(2)))
            sub, path, pending_title = "", [text], None
            continue
        subm = _WECOM_SUB_RE.match(text)
        if subm and line.indent == 0:
            title = subm.group(2).rstrip(":").lower()
            sub = "violations" if "violation" in title else "punishment" if "punishment" in title else subm.group(1)
            path, pending_title = path[:1] + [text], None
            continue
        scope = f"{section}/{sub}" if sub else section
        if text.startswith(_BULLET_GLYPH):
            body = text[1:].strip()
            if sub == "violations" and _is_title(body):
                pending_title = (f"{section}/{slugify(body)}", line)
                continue
            b.add(f"{scope}/b{next_n(scope + '#b')}", line, path, kind="item", skip=1, parent=intro.get(scope))
            pending_title = None
            continue
        if pending_title:
            local, title_line = pending_title
            b.add(local, title_line, path, kind="item", skip=1)
            b.extend(local, line)
            pending_title = None
            continue
        numbered = re.match(r"^(\d)\.\s", text)
        if numbered and line.indent > 0:
            b.add(f"{scope}/{numbered.group(1)}", line, path, kind="item", parent=intro.get(scope))
        elif text.startswith("Note:"):
            b.add(f"{scope}/note", line, path)
        else:
            intro[scope] = b.add(f"{scope}/p{next_n(scope + '#p')}", line, path)


# --- Contraband notice: paragraphs, a numbered list of penalty grades, a dashed list ---------------


@parser("notice")
def _parse_notice(b: _Builder) -> None:
    """Paragraphs, a numbered list of penalty grades and dashed lists (the contraband notice)."""
    scope, path = "", []
    paragraph_n = 0
    last_paragraph: str | None = None
    for line in _lines(b.text)[1:]:
        text = line.text
        graded = re.match(r"^(\d)\.\s", text)
        if graded:
            b.add(f"grade-{graded.group(1)}", line, path, parent=last_paragraph, kind="item")
            continue
        if text.startswith("- "):
            b.add(f"{last_paragraph}/b{len([k for k in b.drafts if k.startswith(f'{last_paragraph}/b')]) + 1}",
                  line, path, parent=last_paragraph, kind="item", skip=2)
            continue
        if _is_title(text, 60):
            scope, path, paragraph_n = slugify(text) + "/", [text], 0
            continue
        paragraph_n += 1
        last_paragraph = b.add(f"{scope}p{paragraph_n}", line, path)


def parse_document(document: PolicyProfile, text: str) -> list[Clause]:
    """Split one cleaned document into clauses, in document order, with the parser its profile names.

    Raises:
        CorpusError: the profile names no known parser, or the document yields no clause or repeats an id.
    """
    parse = PARSERS.get(document.parser)
    if parse is None:
        raise CorpusError(f"{document.path}: parser: unknown format family {document.parser!r} "
                          f"(known: {', '.join(sorted(PARSERS))})", document_id=document.document_id)
    builder = _Builder(document, text)
    parse(builder)
    clauses = builder.clauses()
    if not clauses:
        raise CorpusError(f"document {document.document_id!r} yielded no clauses", document_id=document.document_id)
    return clauses


# --- Stance -----------------------------------------------------------------------------------------

_EXCEPTION_RE = re.compile(r"\b(we may allow the following exceptions|exceptions may be permitted)", re.I)
_DEFINITION_RE = re.compile(r"^(\S+ ){0,4}(refers to|is defined as|means|usually refers to|usually involves|are goods|"
                            r"is the use of|is the intentional|is a person who)\b|^New types of drugs include", re.I)
_PENALTY_RE = re.compile(r"\b(will take (appropriate )?actions? against|may suspend|take appropriate action|will be (deleted|blocked)|"
                         r"permanently (ban|block|close|prohibit)|suspend or terminate|remove or change the visibility|"
                         r"will be punished|result in penalties|reserve the right to take)", re.I)
_PROCEDURE_RE = re.compile(r"\b(you can report|you may appeal|report against|contact us|please contact|appeal to|"
                           r"we (also )?encourage (you|users) to (use|report|refer)|seek (further )?help|to report)\b", re.I)
_PROHIBIT_RE = re.compile(r"\b(shall not|must not|may not|not allowed|prohibit(s|ed)?|forbidden|not permit(ted)?|"
                          r"strictly|you shall|you must|must (use|not)|shall abide|is illegal)\b", re.I)
_PERMIT_RE = re.compile(r"\b(you can|is allowed|are allowed|may be permitted|we may allow)\b", re.I)
_INHERITED: frozenset[Stance] = frozenset({"prohibits", "exception", "penalty", "procedure", "definition"})


def label_stance(local_id: str, text: str, kind: ClauseKind, parent_stance: Stance | None,
                 profile: PolicyProfile) -> Stance:
    """What a clause does, from where it sits (the profile's stance rules and prohibiting regions)
    and how it is worded.

    A list item or worked example takes its parent's stance unless its own words say otherwise:
    "9.1.5 Prohibited drugs;" prohibits because the list it sits in does.
    """
    fixed = profile.stance_for(local_id)
    if fixed is not None:
        return fixed
    if kind == "example" and parent_stance in _INHERITED:
        return parent_stance
    if _EXCEPTION_RE.search(text):
        return "exception"
    if _DEFINITION_RE.search(text) and not _PROHIBIT_RE.search(text):
        return "definition"
    if _PROHIBIT_RE.search(text):
        return "prohibits"
    if _PROCEDURE_RE.search(text):
        return "procedure"
    if _PENALTY_RE.search(text):
        return "penalty"
    if kind == "item" and parent_stance in _INHERITED:
        return parent_stance
    if profile.in_prohibiting_region(local_id):
        return "prohibits"
    if _PERMIT_RE.search(text):
        return "permits"
    return "context"


# --- Quotable spans: what a citation may quote, fixed per clause (embedded once, at index time) -----

_EXCEPTION_PHRASE_RE = re.compile(
    r"\((?:excluding|except)[^)]*\)|\bexcept (?:for |in cases )[^.;]*|\bunless [^.;]*"
    r"|[^.;]*\b(?:you can|we may[^.;]{0,30}\ballow|allow people to|management permissions|give priority to|"
    r"may be permitted)\b[^.;]*", re.I)
"""Permissions written inside a clause: exceptions ("except for scenes depicting ... fishing"),
conditions ("unless used to ... search for missing persons") and stated permissions
("You can also register a new Weixin account using an existing Weixin account")."""


def quote_spans(text: str, max_words: int = 40) -> list[tuple[int, int]]:
    """Candidate quote spans of a clause, as (start, end) offsets: sentences and semicolon parts,
    and for long ones comma-separated runs of up to `max_words` words. The whole text is one too
    when it is short enough to quote whole."""
    spans = [(0, len(text))] if len(text.split()) <= max_words else []
    for match in re.finditer(r"(?:[^.;:!?]|[.;:!?](?=\S))+[.;:!?]?", text):  # "12.5" is not a sentence end
        start, end = _strip_span(text, match.start(), match.end())
        if end - start < 12:
            continue
        spans.append((start, end))
        if len(text[start:end].split()) > max_words:
            for sub in re.finditer(r"[^,]+(?:,[^,]+){0,3},?", text[start:end]):
                s, e = _strip_span(text, start + sub.start(), start + sub.end())
                if e - s >= 12:
                    spans.append((s, e))
    return list(dict.fromkeys(spans)) or [(0, len(text))]


def exception_spans(text: str) -> list[tuple[int, int]]:
    """Permissions and exceptions written inside a clause, as (start, end) offsets of its text."""
    out = []
    for match in _EXCEPTION_PHRASE_RE.finditer(text):
        start, end = _strip_span(text, match.start(), match.end())
        if end - start >= 12:
            out.append((start, end))
    return out


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
