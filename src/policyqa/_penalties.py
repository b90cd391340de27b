"""Penalties stage: violated clauses + where the content was posted -> the penalty clauses that apply,
most specific first, each with why.

The rules are data: each profile's `penalties` (corpus/profiles/*.toml) say which of its penalty
clauses apply to which violations (its own clauses by pattern, named clause groups of any document,
or any document governing a product) and under which conditions (posted on a surface, or naming a
product). With a product given, only the documents that govern it set penalties.
"""

from __future__ import annotations

import re

from ._profiles import Catalogue, PenaltyRule, PolicyProfile, PostingContext


def penalty_clause_ids(violated: list[str], message: str, profiles: list[PolicyProfile], catalogue: Catalogue,
                       context: PostingContext | None = None) -> list[tuple[str, str]]:
    """(penalty clause id, why it applies) for a set of violated clause ids: the rules of the
    documents the violations come from first, in the order the violations were cited."""
    context = context or PostingContext()
    by_id = {p.document_id: p for p in profiles}
    governing = [p for p in profiles if context.product is None or context.product in p.products]
    governing_ids = [p.document_id for p in governing]
    violated_ids = [cid.split("/", 1)[0] for cid in violated]
    # Documents whose own clauses were violated come first (most specific), then the others.
    order = dict.fromkeys([*(d for d in violated_ids if d in governing_ids), *governing_ids])
    out: dict[str, str] = {}
    for profile in (by_id[d] for d in order):
        for rule in profile.penalties:
            if _covers(rule, profile, violated, by_id) and _holds(rule, message, catalogue, context):
                for local in rule.penalties:
                    out.setdefault(f"{profile.document_id}/{local}", rule.why)
    return list(out.items())


def _covers(rule: PenaltyRule, owner: PolicyProfile, violated: list[str], by_id: dict[str, PolicyProfile]) -> bool:
    """Does the rule cover any of the violated clauses?"""
    for clause_id in violated:
        document_id, _, local = clause_id.partition("/")
        document = by_id.get(document_id)
        if document is None:
            continue
        if document is owner and any(re.search(pattern, local) for pattern in rule.violated):
            return True
        if any(document.in_group(group, local) for group in rule.violated_groups):
            return True
        if set(rule.violated_products) & set(document.products):
            return True
    return False


def _holds(rule: PenaltyRule, message: str, catalogue: Catalogue, context: PostingContext) -> bool:
    """Are the rule's conditions met? A surface counts when given, or, with none given, when the
    message names it ("in our group")."""
    if rule.surface:
        if context.surface is not None:
            if context.surface != rule.surface:
                return False
        elif not catalogue.surfaces[rule.surface].named_in(message):
            return False
    if rule.names_product and not catalogue.products[rule.names_product].named_in(message):
        return False
    return True


def penalty_citations(index, violated: list[str], message: str, context: PostingContext | None = None) -> list:
    """Citations of the penalty clauses for these violated clauses, quoted whole, each saying why it applies."""
    from ._models import Citation

    out = []
    for clause_id, why in penalty_clause_ids(violated, message, index.profiles, index.catalogue, context):
        clause = index.clause(clause_id)  # check_profiles guarantees it exists in a built index
        out.append(Citation.of(clause, quote=clause.text, score=1.0, applies_because=why))
    return out
