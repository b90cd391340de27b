"""Policy knowledge is data (corpus/profiles/, corpus/products.toml): profiles are validated on load and
against the clauses at build time, the Python code names no document or clause, and a seventh
document added from a fixture is indexed and ruled on with no code change."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from policyqa import CorpusError, InvalidInputError, PolicyIndex, build_corpus, judge, load_profiles, load_settings
from policyqa._config import PROJECT_ROOT
from policyqa._indexing import load_clauses

FIXTURE = Path(__file__).parent / "fixtures" / "seventh-document"
SOURCE = PROJECT_ROOT / "src" / "policyqa"


def _code_strings(path: Path) -> list[str]:
    """Every string literal in a module except docstrings (comments are not strings)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    # attribute docstrings: a bare string right after an assignment
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for before, after in zip(stmts, stmts[1:]):
                if isinstance(before, (ast.Assign, ast.AnnAssign)) and isinstance(after, ast.Expr) \
                        and isinstance(after.value, ast.Constant):
                    docstrings.add(id(after.value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_the_code_names_no_policy_document_or_clause():
    profiles = load_profiles(PROJECT_ROOT / "corpus")
    documents = [p.document_id for p in profiles]
    penalty_ids = {local for p in profiles for rule in p.penalties for local in rule.penalties}
    offenders = []
    for path in sorted(SOURCE.glob("*.py")):
        for literal in _code_strings(path):
            if any(doc in literal for doc in documents):
                offenders.append(f"{path.name}: {literal[:80]!r}")
            elif literal in penalty_ids or re.search(r"\b(rule-\d|grade-\d)", literal):
                offenders.append(f"{path.name}: {literal[:80]!r}")
    assert not offenders, "policy knowledge belongs in corpus/profiles/:\n" + "\n".join(offenders)


def test_the_grep_sees_a_document_id_in_code(tmp_path):
    """The check above can fail: a literal document id in code is found, one in a docstring is not."""
    module = tmp_path / "m.py"
    module.write_text('"""About weixin-standards/V.1."""\nPENALTY = "weixin-standards/V.1"\n')
    assert _code_strings(module) == ["weixin-standards/V.1"]


def test_a_malformed_profile_names_the_file_and_entry(corpus_copy):
    path = corpus_copy / "profiles" / "weixin-standards.toml"
    path.write_text(path.read_text().replace('stance = "penalty"', 'stance = "punish"', 1))
    with pytest.raises(CorpusError, match=r"weixin-standards\.toml: stances\.0\.stance"):
        load_profiles(corpus_copy)


def test_an_unknown_product_or_parser_is_refused(corpus_copy):
    path = corpus_copy / "profiles" / "wecom-penalties.toml"
    original = path.read_text()
    path.write_text(original.replace('products = ["wecom"]', 'products = ["wework"]'))
    with pytest.raises(CorpusError, match=r"wecom-penalties\.toml: products: unknown product 'wework'"):
        load_profiles(corpus_copy)
    path.write_text(original.replace('parser = "penalty-rules"', 'parser = "faq"'))
    with pytest.raises(CorpusError, match=r"wecom-penalties\.toml: parser: unknown format family 'faq'"):
        load_clauses(load_settings(corpus_dir=corpus_copy))


def test_a_renumbered_penalty_clause_fails_the_build_with_a_message(corpus_copy, fake_embedder, tmp_path):
    path = corpus_copy / "profiles" / "weixin-standards.toml"
    path.write_text(path.read_text().replace('penalties = ["V.1"]', 'penalties = ["V.9"]'))
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "home")
    with pytest.raises(CorpusError, match=r"weixin-standards\.toml: penalties\[1\]: no clause weixin-standards/V\.9"):
        PolicyIndex(settings, embedder=fake_embedder).build()


def test_a_pattern_that_matches_no_clause_fails_the_build(corpus_copy):
    path = corpus_copy / "profiles" / "wechat-contraband-notice.toml"
    path.write_text(path.read_text().replace("illegal-goods = ['^p5$']", "illegal-goods = ['^p55$']"))
    with pytest.raises(CorpusError, match=r"groups\.illegal-goods: pattern '\^p55\$' matches no clause"):
        load_clauses(load_settings(corpus_dir=corpus_copy))


def _add_seventh_document(corpus: Path) -> None:
    """What a maintainer does to add a policy: a source text, a profile, a product, training items."""
    shutil.copy(FIXTURE / "sources" / "900_mini_program_rules.txt", corpus / "sources")
    shutil.copy(FIXTURE / "profiles" / "mini-program-rules.toml", corpus / "profiles")
    with (corpus / "products.toml").open("a", encoding="utf-8") as catalogue:
        catalogue.write((FIXTURE / "products.toml").read_text(encoding="utf-8"))
    shutil.copy(FIXTURE / "training" / "mini-program.jsonl", corpus / "training" / "en")


def test_a_seventh_document_is_a_data_change(corpus_copy, fake_embedder, tmp_path):
    _add_seventh_document(corpus_copy)
    build_corpus(corpus_copy)
    assert (corpus_copy / "mini-program-rules.txt").is_file()
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "home")
    PolicyIndex(settings, embedder=fake_embedder).build()
    index = PolicyIndex(settings, embedder=fake_embedder).load()
    assert index.clause("mini-program-rules/1.1").stance == "prohibits"
    assert index.clause("mini-program-rules/2.1").stance == "penalty"
    hits = index.search("selling lottery tickets in a mini program", product="mini-program")
    assert hits and {h.clause.document_id for h in hits} == {"mini-program-rules"}

    ruling = judge("lottery tickets for sale in my mini program, 5 yuan a ticket, draw on sunday",
                   product="mini-program", index=index)
    assert ruling.verdict == "violation", ruling.summary
    assert ruling.violations[0].clause_id == "mini-program-rules/1.1"
    assert ruling.violations[0].products == ("mini-program",)
    assert [p.clause_id for p in ruling.penalties] == ["mini-program-rules/2.1", "mini-program-rules/2.2"]
    assert all(p.applies_because for p in ruling.penalties)


def test_an_unknown_product_is_a_clear_error(built_small):
    with pytest.raises(InvalidInputError, match="unknown product 'myspace'; choose one of: weixin, wechat, wecom"):
        judge("hello", product="myspace", index=built_small)
    with pytest.raises(InvalidInputError, match="unknown surface 'forum'"):
        judge("hello", product="weixin", surface="forum", index=built_small)


@pytest.fixture
def built_small(small_corpus, fake_embedder, tmp_path):
    settings = load_settings(corpus_dir=small_corpus, home=tmp_path / "home")
    PolicyIndex(settings, embedder=fake_embedder).build()
    return PolicyIndex(settings, embedder=fake_embedder).load()
