"""The `policyqa` command: help everywhere, JSON output, clear errors with a non-zero exit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from policyqa.cli import app

runner = CliRunner()
COMMANDS = ["corpus", "index", "search"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_bad_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("POLICYQA_TOP_K", "many")
    result = runner.invoke(app, ["search", "gambling"])
    assert result.exit_code == 1
    assert "Invalid PolicyQA settings" in result.output and "top_k" in result.output


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYQA_CONFIG", str(tmp_path / "nope.toml"))
    result = runner.invoke(app, ["search", "gambling"])
    assert result.exit_code == 1 and "not a file" in result.output


def test_empty_query_fails_before_any_model_loads():
    result = runner.invoke(app, ["search", "   "])
    assert result.exit_code == 1 and "empty" in result.output


def test_binary_stdin_is_refused():
    result = runner.invoke(app, ["search", "-"], input=b"\xff\xfe\x00\x01" * 50)
    assert result.exit_code == 1 and "binary" in result.output


def test_a_hub_model_name_is_refused_without_network(monkeypatch):
    monkeypatch.setenv("POLICYQA_EMBEDDING_MODEL", "sentence-transformers/all-mpnet-base-v2")
    result = runner.invoke(app, ["index"])
    assert result.exit_code == 1 and "never downloads" in result.output


@pytest.mark.slow
def test_search_json_ranks_the_forgery_clause_first(real_home, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    result = runner.invoke(app, ["search", "selling fake ID cards", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["clause_id"] == "weixin-standards/II.9.2"
    assert hits[0]["heading_path"] == "II. Content Rules > 9. Content involving illegal goods"
    assert "identity cards" in hits[0]["text"] and len(hits) == 3


@pytest.mark.slow
def test_stale_index_stops_with_how_to_rebuild(real_home, monkeypatch, corpus_copy):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    monkeypatch.setenv("POLICYQA_CORPUS_DIR", str(corpus_copy))
    (corpus_copy / "wecom-penalties.txt").write_text((corpus_copy / "wecom-penalties.txt").read_text() + "\nEdited.\n")
    result = runner.invoke(app, ["search", "gambling"])
    assert result.exit_code == 1
    assert "stale" in result.output and "policyqa index" in result.output
