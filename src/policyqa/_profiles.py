"""Policy profiles: everything the tool knows about each policy document, as validated data.

One TOML file per document under corpus/profiles/ says where its text comes from and how it is
cleaned, which parser family reads it, which products it governs, what its clauses do (stance rules
over clause ids), which clauses form named groups ("illegal-goods"), and which penalty clauses apply
to which violations under which conditions. corpus/products.toml names the products and surfaces.
Adding a policy document is adding a text and a profile; no Python changes.

Loading checks the shape of every file (`load_profiles`); `check_profiles` checks them against the
parsed clauses when the index is built, so a renumbered clause fails the build with a message that
names the file and the entry instead of silently losing its penalty.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._errors import CorpusError
from ._models import Clause, PolicyDocument, Stance

PROFILES = "profiles"
PRODUCTS = "products.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
    return pattern


Pattern = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, checked to compile when the profile loads."""


class SourceCut(_Strict):
    """How to cut the document out of its source file under corpus/sources/ and clean it."""

    file: str
    markdown: bool = False
    begin: str | None = Field(None, description="The document starts at this line (inclusive), else at the file start.")
    end: str | None = Field(None, description="The document stops before this line, else at the file end.")
    repairs: tuple[tuple[str, str], ...] = Field((), description="[old, new] text repairs, each matching exactly once.")
    drop_lines: tuple[str, ...] = Field((), description="Trailing lines that are not clauses (a signature).")
    title_line: str | None = Field(None, description="The source's own title line, promoted to the '#' heading.")


class StanceRule(_Strict):
    """Clauses whose local id matches `pattern` have this stance, whatever their wording."""

    pattern: Pattern
    stance: Stance


class PenaltyRule(_Strict):
    """Penalty clauses of this document that apply when a violated clause matches, and the
    conditions under which they do. At least one of `violated`, `violated_groups`,
    `violated_products` says which violations it covers."""

    penalties: tuple[str, ...] = Field(min_length=1, description="Local ids of this document's penalty clauses, most specific first.")
    violated: tuple[Pattern, ...] = Field((), description="Patterns on the local ids of this document's violated clauses.")
    violated_groups: tuple[str, ...] = Field((), description="Clause groups (any document's) whose violation it covers.")
    violated_products: tuple[str, ...] = Field((), description="Covers violations of documents governing these products.")
    surface: str | None = Field(None, description="Applies only to content posted there (given, or named in the text).")
    names_product: str | None = Field(None, description="Applies only when the text names this product.")
    why: str = Field(min_length=1, description="Shown with the penalty: why it applies.")

    @model_validator(mode="after")
    def _covers_something(self) -> PenaltyRule:
        if not (self.violated or self.violated_groups or self.violated_products):
            raise ValueError("a penalty rule needs `violated`, `violated_groups` or `violated_products`")
        return self


class PolicyProfile(PolicyDocument):
    """A policy document with its profile: the document's metadata plus the rules about its clauses."""

    parser: str = Field(description="The parser family that reads the text (_clauses.PARSERS).")
    position: int = Field(100, description="Where the document sits in corpus order (profiles without one follow, "
                                           "by file name); equal search scores go to the earlier document.")
    source: SourceCut
    stances: tuple[StanceRule, ...] = ()
    scope_pattern: Pattern | None = Field(
        None, description="Regex a text must match for this document to be fully in scope; None: always in scope.")
    prohibiting_regions: tuple[Pattern, ...] = Field(
        (), description="Sections whose every rule restricts conduct, even where a clause's own words only describe it.")
    groups: dict[str, tuple[Pattern, ...]] = Field(default_factory=dict, description="Group name -> patterns on local ids.")
    penalties: tuple[PenaltyRule, ...] = ()
    path: str = Field("", exclude=True, description="The profile file, for error messages.")

    def stance_for(self, local_id: str) -> Stance | None:
        """The stance a stance rule fixes for this clause, or None to read it from the wording."""
        return next((rule.stance for rule in self.stances if re.search(rule.pattern, local_id)), None)

    def in_prohibiting_region(self, local_id: str) -> bool:
        return any(re.search(pattern, local_id) for pattern in self.prohibiting_regions)

    def in_group(self, group: str, local_id: str) -> bool:
        return any(re.search(pattern, local_id) for pattern in self.groups.get(group, ()))


class Product(_Strict):
    name: str
    description: str = ""
    mention: Pattern | None = Field(None, description="How a text names it (regex, case-insensitive).")

    def named_in(self, text: str) -> bool:
        return bool(self.mention and re.search(self.mention, text, re.I))


class Catalogue(_Strict):
    """corpus/products.toml: the products content is posted in, and the surfaces within them."""

    products: dict[str, Product] = Field(min_length=1)
    surfaces: dict[str, Product] = Field(default_factory=dict)


class PostingContext(_Strict):
    """Where a message was posted or a question is about; both optional."""

    product: str | None = None
    surface: str | None = None


def load_catalogue(corpus_dir: Path) -> Catalogue:
    """Raises: CorpusError naming the file and the entry when it is missing or malformed."""
    path = corpus_dir / PRODUCTS
    try:
        return Catalogue.model_validate(_read_toml(path))
    except ValidationError as exc:
        raise CorpusError(f"{path}: {_problems(exc)}") from exc


def load_profiles(corpus_dir: Path) -> list[PolicyProfile]:
    """Every profile under corpus/profiles/, in file-name order, checked for shape and against the
    product catalogue.

    Raises:
        CorpusError: a profile is missing, unreadable or malformed (the message names file and entry).
    """
    folder = corpus_dir / PROFILES
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not paths:
        raise CorpusError(f"no policy profiles in {folder}: each document needs corpus/{PROFILES}/<document_id>.toml")
    catalogue = load_catalogue(corpus_dir)
    profiles = []
    for path in paths:
        raw = _read_toml(path)
        source = raw.get("source")
        raw.setdefault("corpus_file", f"{raw.get('document_id', path.stem)}.txt")
        raw.setdefault("source_file", source.get("file", "") if isinstance(source, dict) else "")
        try:
            profile = PolicyProfile.model_validate({**raw, "path": str(path)})
        except ValidationError as exc:
            raise CorpusError(f"{path}: {_problems(exc)}") from exc
        if profile.document_id != path.stem:
            raise CorpusError(f"{path}: document_id {profile.document_id!r} must match the file name",
                              document_id=profile.document_id)
        _check_names(profile, catalogue)
        profiles.append(profile)
    return sorted(profiles, key=lambda p: p.position)  # stable: file-name order among equals


def _check_names(profile: PolicyProfile, catalogue: Catalogue) -> None:
    def fail(entry: str, message: str) -> None:
        raise CorpusError(f"{profile.path}: {entry}: {message}", document_id=profile.document_id)

    for product in profile.products:
        if product not in catalogue.products:
            fail("products", f"unknown product {product!r} (known: {', '.join(catalogue.products)})")
    for n, rule in enumerate(profile.penalties, start=1):
        for product in (*rule.violated_products, *([rule.names_product] if rule.names_product else [])):
            if product not in catalogue.products:
                fail(f"penalties[{n}]", f"unknown product {product!r}")
        if rule.surface and rule.surface not in catalogue.surfaces:
            fail(f"penalties[{n}]", f"unknown surface {rule.surface!r} (known: {', '.join(catalogue.surfaces)})")


def check_profiles(profiles: list[PolicyProfile], clauses: list[Clause]) -> None:
    """Check every clause id and pattern in the profiles against the parsed clauses: a penalty clause
    that does not exist, a pattern that matches no clause (a renumbered section), or a group no
    profile defines fails the build.

    Raises:
        CorpusError: naming the profile file, the entry and the id or pattern.
    """
    local_ids: dict[str, set[str]] = {}
    for clause in clauses:
        local_ids.setdefault(clause.document_id, set()).add(clause.clause_id.split("/", 1)[1])
    defined_groups = {name for profile in profiles for name in profile.groups}
    for profile in profiles:
        ids = local_ids.get(profile.document_id, set())

        def fail(entry: str, message: str) -> None:
            raise CorpusError(f"{profile.path}: {entry}: {message}", document_id=profile.document_id)

        def matches(pattern: str) -> bool:
            return any(re.search(pattern, local) for local in ids)

        for n, rule in enumerate(profile.stances, start=1):
            if not matches(rule.pattern):
                fail(f"stances[{n}]", f"pattern {rule.pattern!r} matches no clause of {profile.document_id}")
        for pattern in profile.prohibiting_regions:
            if not matches(pattern):
                fail("prohibiting_regions", f"pattern {pattern!r} matches no clause of {profile.document_id}")
        for name, patterns in profile.groups.items():
            for pattern in patterns:
                if not matches(pattern):
                    fail(f"groups.{name}", f"pattern {pattern!r} matches no clause of {profile.document_id}")
        for n, rule in enumerate(profile.penalties, start=1):
            for local in rule.penalties:
                if local not in ids:
                    fail(f"penalties[{n}]", f"no clause {profile.document_id}/{local} (renumbered or removed?)")
            for pattern in rule.violated:
                if not matches(pattern):
                    fail(f"penalties[{n}]", f"pattern {pattern!r} matches no clause of {profile.document_id}")
            for group in rule.violated_groups:
                if group not in defined_groups:
                    fail(f"penalties[{n}]", f"no profile defines the clause group {group!r}")


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise CorpusError(f"{path} is missing") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path} is not valid TOML: {exc}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'profile'}: {e['msg']}" for e in exc.errors())

