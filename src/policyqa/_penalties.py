"""Penalties stage: violated clauses -> what the rules say happens next, most specific first."""

from __future__ import annotations

import re

PENALTY_CLAUSES: dict[str, tuple[str, ...]] = {
    "weixin-standards": ("weixin-standards/V.1",),
    "wechat-aup": ("wechat-aup/1.2", "wechat-aup/1.2.a", "wechat-aup/1.2.b", "wechat-aup/1.2.d", "wechat-aup/1.2.e"),
    "wechat-community-guidelines": ("wechat-community-guidelines/introduction/p3",),
    "wecom-penalties/rule-1": ("wecom-penalties/rule-1/punishment/1", "wecom-penalties/rule-1/punishment/2",
                               "wecom-penalties/rule-1/punishment/3", "wecom-penalties/rule-1/punishment/note"),
    "wecom-penalties/rule-3": ("wecom-penalties/rule-3/punishment/b1", "wecom-penalties/rule-3/punishment/b2"),
    "contraband": ("wechat-contraband-notice/grade-1", "wechat-contraband-notice/grade-2"),
}
"""WeCom rules #1 and #3 set penalties by violation type; Weixin section V, the AUP's enforcement list
(1.2) and the Community Guidelines' enforcement paragraph apply to their own documents; the
contraband notice's grades apply to illegal-goods content whichever document prohibits it."""

PENALTY_IN_GROUPS = ("weixin-standards/V.2", "wechat-contraband-notice/grade-3")
WECOM_LINKED = ("wecom-penalties/rule-2/punishment/b1",)
_GROUP_RE = re.compile(r"\b(group|groups|群)\b", re.I)
_WECOM_RE = re.compile(r"\b(wecom|enterprise wechat|corporate wechat|work account)\b", re.I)
_ILLEGAL_GOODS_RE = re.compile(
    r"^(weixin-standards/II\.9\.|wechat-aup/8\.|wechat-community-guidelines/(sale-or-transfer-of-(regulated|protected)|counterfeit-goods)"
    r"|wecom-penalties/rule-3/sending-illegal-content|wechat-contraband-notice/p5)")


def penalty_clause_ids(violated: list[str], message: str) -> list[str]:
    """The penalty clauses for a set of violated clause ids, most specific first."""
    out: list[str] = []
    for clause_id in violated:
        document, _, local = clause_id.partition("/")
        key = f"{document}/{local.split('/')[0]}" if document == "wecom-penalties" else document
        out.extend(PENALTY_CLAUSES.get(key, ()))
        if _ILLEGAL_GOODS_RE.match(clause_id):
            out.extend(PENALTY_CLAUSES["contraband"])
    if _GROUP_RE.search(message):
        out.extend(p for p in PENALTY_IN_GROUPS if p.split("/")[0] in {v.split("/")[0] for v in violated} or "contraband" in p
                   and any(_ILLEGAL_GOODS_RE.match(v) for v in violated))
    if _WECOM_RE.search(message) and any(v.startswith(("weixin-standards", "wechat-")) for v in violated):
        out.extend(WECOM_LINKED)
    return list(dict.fromkeys(out))


def penalty_citations(index, violated: list[str], message: str) -> list:
    """Citations of the penalty clauses for these violated clauses, quoted whole."""
    from ._models import Citation

    out = []
    for clause_id in penalty_clause_ids(violated, message):
        try:
            clause = index.clause(clause_id)
        except KeyError:
            continue
        out.append(Citation.of(clause, quote=clause.text, score=1.0))
    return out
