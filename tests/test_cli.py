"""The `policyqa` command: help everywhere, JSON output, clear errors with a non-zero exit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from policyqa.cli import app

runner = CliRunner()
COMMANDS = ["corpus", "index", "search", "ask", "judge", "eval", "decide", "queue", "serve", "check-data"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("command", [["judge"], ["ask"], ["search"], ["queue"], ["decide"], ["eval"]])
def test_help_shows_on_off_flags_without_a_value_type(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert "--help" in result.output and "<bool>" not in result.output


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


@pytest.mark.slow
def test_ask_and_judge_print_json(real_home, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    answer = json.loads(runner.invoke(app, ["ask", "Can I post photos of myself breastfeeding?", "--json"]).stdout)
    assert answer["verdict"] == "allowed" and answer["citations"][0]["quote"] in answer["citations"][0]["text"]
    ruling = json.loads(runner.invoke(app, ["judge", "selling fake ID cards, any province, dm me", "--json"]).stdout)
    assert ruling["verdict"] == "violation" and ruling["violations"] and ruling["penalties"]


@pytest.mark.slow
def test_judge_batch_resumes_and_records_bad_rows(real_home, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    source, target = tmp_path / "messages.jsonl", tmp_path / "rulings.jsonl"
    source.write_text('{"id": "a", "text": "selling fake ID cards, dm me"}\n'
                      'not json at all\n'
                      '{"id": "c", "text": ""}\n')
    result = runner.invoke(app, ["judge", "--file", str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "line-2", "c"]
    assert rows[0]["verdict"] == "violation" and "not valid JSON" in rows[1]["error"] and "empty" in rows[2]["error"]
    source.write_text(source.read_text() + '{"id": "d", "text": "the archery club meets Sunday, bring your own bow"}\n')
    runner.invoke(app, ["judge", "--file", str(source), "--out", str(target)])
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "line-2", "c", "d"]  # earlier rows were not redone


@pytest.mark.slow
def test_ask_batch_reads_csv(real_home, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    source, target = tmp_path / "questions.csv", tmp_path / "answers.jsonl"
    source.write_text('id,text\nq1,"Can a seller put a QR code to her group in her profile photo?"\n')
    result = runner.invoke(app, ["ask", "--file", str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    row = json.loads(target.read_text())
    assert row["id"] == "q1" and row["verdict"] == "prohibited"


def test_out_without_file_is_a_usage_error():
    result = runner.invoke(app, ["judge", "hello", "--out", "x.jsonl"])
    assert result.exit_code != 0 and "--out goes with --file" in result.output


@pytest.mark.slow
def test_batch_without_out_writes_jsonl_to_stdout_and_ends_with_a_tally(real_home, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    source = tmp_path / "x.jsonl"
    source.write_text('{"id": "a", "text": "selling fake ID cards, dm me"}\n{"id": "b", "text": "lunch at noon?"}\n'
                      '{"id": "c", "text": ""}\n')
    result = runner.invoke(app, ["judge", "--file", str(source)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["record_id"] and rows[0]["index_fingerprint"] and rows[0]["model"] and rows[0]["recorded_at"]
    assert "violation 1" in result.stderr and "no_violation 1" in result.stderr and "error 1" in result.stderr


@pytest.mark.slow
def test_a_ruling_is_audited_decided_exported_and_scored(real_home, monkeypatch, tmp_path):
    """judge -> decide -> audit export -> feedback export -> eval --dataset, all from the command line."""
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    monkeypatch.setenv("POLICYQA_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    ruled = json.loads(runner.invoke(app, ["judge", "selling fake ID cards, any province, dm me", "--json"]).stdout)
    assert ruled["record_id"] and ruled["model"].startswith("packaged:") and ruled["recorded_at"].startswith("20")
    benign = json.loads(runner.invoke(app, ["judge", "the archery club meets Sunday", "--json"]).stdout)
    decided = runner.invoke(app, ["decide", ruled["record_id"], "--agree", "--reviewer", "ann", "--note", "forgery"])
    assert decided.exit_code == 0, decided.output
    wrong = runner.invoke(app, ["decide", benign["record_id"], "--verdict", "violation", "--clause", "nope/1"])
    assert wrong.exit_code == 1 and "unknown clause" in wrong.output
    assert runner.invoke(app, ["decide", benign["record_id"], "--verdict", "no_violation"]).exit_code == 0
    audit = tmp_path / "audit.csv"
    assert runner.invoke(app, ["audit", "export", "--out", str(audit)]).exit_code == 0
    assert "forgery" in audit.read_text() and ruled["record_id"] in audit.read_text()
    reviewed = tmp_path / "reviewed.jsonl"
    exported = runner.invoke(app, ["feedback", "export", "--out", str(reviewed)])
    assert exported.exit_code == 0 and "Wrote 2 reviewed items" in exported.stderr
    items = [json.loads(line) for line in reviewed.read_text().splitlines()]
    assert items[0]["expected_verdict"] == "violation"
    assert items[0]["gold"][0]["clause"] == ruled["violations"][0]["clause_id"]
    assert items[0]["gold"][0]["quote"] in ruled["violations"][0]["text"]
    scored = runner.invoke(app, ["eval", "--dataset", str(reviewed), "--no-llama-baseline", "--out", str(tmp_path / "r")])
    assert scored.exit_code == 0, scored.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["items"] == 2 and report["verdicts"]["PolicyQA"]["accuracy"]["value"] == 1.0


@pytest.mark.slow
def test_judge_takes_the_product_and_surface(real_home, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    message = "I can issue fapiao invoices for any amount, 3% fee, add my wx"
    result = runner.invoke(app, ["judge", message, "--product", "wecom", "--json"])
    assert result.exit_code == 0, result.output
    ruling = json.loads(result.stdout)
    assert [p["clause_id"] for p in ruling["penalties"]] == ["wecom-penalties/rule-3/punishment/b1",
                                                             "wecom-penalties/rule-3/punishment/b2"]
    shown = runner.invoke(app, ["judge", message, "--product", "weixin", "--surface", "group"])
    assert shown.exit_code == 0 and "penalty: weixin-standards/V.2" in shown.output and "why:" in shown.output
    wrong = runner.invoke(app, ["judge", message, "--product", "myspace"])
    assert wrong.exit_code == 1 and "unknown product 'myspace'" in wrong.output
