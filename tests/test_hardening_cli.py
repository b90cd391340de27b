"""Issue 13: odd input and odd files end as a clear one-line error or an error row, never a
traceback, and a killed or repeated batch resumes without losing or gluing rows."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

import policyqa.cli
from policyqa import CorpusError, InvalidInputError, check_text, read_rows
from policyqa.cli import app

runner = CliRunner()


@pytest.fixture
def no_model(monkeypatch, tmp_path):
    """Any attempt to build or load the index fails at once, so a test shows what happens before it."""
    monkeypatch.setenv("POLICYQA_EMBEDDING_MODEL", str(tmp_path / "no-such-model"))


@pytest.fixture
def loaded(real_index, monkeypatch):
    """The CLI's commands use one index loaded for the session instead of loading their own."""
    monkeypatch.setenv("POLICYQA_HOME", str(real_index.settings.home))
    monkeypatch.setattr(policyqa.cli, "_open_index", lambda: real_index)
    return real_index


def _one_error_line(result) -> str:
    """The CLI's error, checked to be one 'Error:' line and exit status 1 with no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# --- 1-3: check_text, the boundary every front end calls ----------------------------------------

def test_a_lone_surrogate_becomes_a_replacement_character():
    checked = check_text("selling fake ID cards \ud800 dm me", max_chars=1000, what="message")
    assert checked == "selling fake ID cards \ufffd dm me"
    checked.encode("utf-8")  # the tokenizer's TypeError came from text UTF-8 cannot encode


def test_invalid_utf8_bytes_become_replacement_characters():
    assert check_text(b"selling fake ID \xff cards, dm me", max_chars=1000) == "selling fake ID \ufffd cards, dm me"


@pytest.mark.parametrize("junk", ["\udcff\udcfe\udcfd", b"\xff\xfe\xfd", "ab \ud800\ud801\ud802 cd"])
def test_text_that_is_mostly_undecodable_is_refused_as_binary(junk):
    with pytest.raises(InvalidInputError, match="the message looks like binary data"):
        check_text(junk, max_chars=1000, what="message")


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", " \u200b\n\ufeff\t\u2060 "])
def test_zero_width_characters_alone_are_empty(invisible):
    with pytest.raises(InvalidInputError, match="^the message is empty"):
        check_text(invisible, max_chars=1000, what="message")


def test_zero_width_characters_at_the_ends_are_stripped_and_inside_kept():
    assert check_text("\ufeff\u200bfake\u200dID \u200b", max_chars=100) == "fake\u200dID"


@pytest.mark.parametrize(("command", "what"), [("judge", "message"), ("ask", "question"), ("search", "query")])
def test_the_cli_names_what_it_checked(no_model, command, what):
    line = _one_error_line(runner.invoke(app, [command, "\u200b\u200b \ufeff"]))
    assert f"the {what} is empty" in line


# --- 4: invalid UTF-8 in an argument (Python hands it over surrogate-escaped) --------------------

@pytest.mark.parametrize("command", ["judge", "ask", "search"])
def test_an_argument_of_invalid_utf8_is_refused_in_one_line(no_model, command):
    line = _one_error_line(runner.invoke(app, [command, "\udcff\udcfe\udcfd\udcfc"]))
    assert "looks like binary data" in line


@pytest.mark.slow
def test_one_invalid_utf8_byte_in_an_argument_is_replaced(loaded):
    result = runner.invoke(app, ["judge", "selling fake ID \udcff cards, any province, dm me", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "selling fake ID \ufffd cards, any province, dm me"


# --- 5, 6, 12, 14: reading a batch ---------------------------------------------------------------

def test_a_csv_field_over_the_csv_module_limit_is_read():
    rows = read_rows(f'id,text\nbig,"{"x " * 100_000}"\nok,hello\n'.encode(), "m.csv")
    assert [r["id"] for r in rows] == ["big", "ok"] and len(rows[0]["text"]) == 200_000


def test_a_jsonl_line_nested_too_deeply_is_an_error_row_and_the_batch_goes_on():
    rows = read_rows(b"[" * 100_000 + b'\n{"id": "b", "text": "hello"}\n', "m.jsonl")
    assert rows == [{"id": "line-1", "error": "line 1 is not valid JSON: nested too deeply"},
                    {"id": "b", "text": "hello"}]


def test_made_up_ids_never_repeat_a_given_id():
    rows = read_rows(b'{"text": "one"}\n{"id": "line-1", "text": "two"}\nnot json\n{"id": "line-3", "text": "x"}\n',
                     "m.jsonl")
    ids = [r["id"] for r in rows]
    assert ids == ["line-1-2", "line-1", "line-3-2", "line-3"] and len(set(ids)) == 4
    csv_ids = [r["id"] for r in read_rows(b"id,text\n,one\nline-2,two\n", "m.csv")]
    assert csv_ids == ["line-2-2", "line-2"]


def test_an_unbalanced_csv_quote_is_an_error_row_not_a_merged_text():
    rows = read_rows(b'id,text\na,"fake ID cards\nb,"hello" there\nc,lunch?\n', "m.csv")
    assert "error" in rows[0] and rows[0]["error"].startswith("lines 2-3: not valid CSV")
    assert rows[1:] == [{"id": "c", "text": "lunch?"}]
    unterminated = read_rows(b'id,text\na,"fake ID cards\nb,hello\n', "m.csv")
    assert len(unterminated) == 1 and "unexpected end of data" in unterminated[0]["error"]


def test_a_csv_row_with_more_fields_than_the_header_is_an_error_row():
    rows = read_rows(b"id,text\na,fake ID cards, any province\nb,hello\n", "m.csv")
    assert rows[0] == {"id": "a", "error": "line 2 has 3 fields but the header has 2; quote a text that holds a comma"}
    assert rows[1] == {"id": "b", "text": "hello"}


# --- 7: --out checked before the model loads, and any old output file resumable -------------------

def test_out_that_is_a_folder_fails_before_the_model_loads(no_model, tmp_path):
    source = tmp_path / "m.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n')
    line = _one_error_line(runner.invoke(app, ["judge", "--file", str(source), "--out", str(tmp_path)]))
    assert "is a folder" in line and "never downloads" not in line


def test_out_in_a_missing_folder_fails_before_the_model_loads(no_model, tmp_path):
    source = tmp_path / "m.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n')
    line = _one_error_line(runner.invoke(app, ["ask", "--file", str(source), "--out", str(tmp_path / "no" / "a.jsonl")]))
    assert "does not exist" in line


@pytest.mark.slow
def test_an_out_file_with_invalid_utf8_or_deep_nesting_resumes(loaded, tmp_path):
    source, target = tmp_path / "m.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"id": "a", "text": "lunch at noon?"}\n{"id": "b", "text": "the archery club meets Sunday"}\n')
    target.write_bytes(b'{"id": "a", "verdict": "no_violation"}\n\xff\xfe{"id": "b"}\n' + b"[" * 100_000 + b"\n")
    result = runner.invoke(app, ["judge", "--file", str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_bytes().splitlines()[-1])["id"] == "b"  # a was done, b was not


# --- 8: corpus files -------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "problem"), [(b"[1, 2]", "must hold a JSON object"),
                                                  (b'{"id": "identity \xff"}', "not UTF-8"),
                                                  (b"[" * 100_000, "not valid JSON")])
def test_a_broken_chat_glossary_is_a_corpus_error_naming_the_file(tmp_path, content, problem):
    from policyqa._retrieval import _read_glossary

    path = tmp_path / "chat_glossary.json"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=problem) as caught:
        _read_glossary(path)
    assert "chat_glossary.json" in str(caught.value)


# --- 9: anything unexpected is one line ------------------------------------------------------------

def _explode(*args, **kwargs):
    raise RuntimeError("boom\nsecond line")


def test_an_unexpected_exception_is_one_line(monkeypatch):
    monkeypatch.setattr(policyqa.cli, "load_settings", _explode)
    line = _one_error_line(runner.invoke(app, ["judge", "hello there"]))
    assert line == "Error: unexpected RuntimeError: boom second line (run with POLICYQA_DEBUG=1 for the traceback)"


def test_policyqa_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(policyqa.cli, "load_settings", _explode)
    monkeypatch.setenv("POLICYQA_DEBUG", "1")
    result = runner.invoke(app, ["judge", "hello there"])
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_is_not_reported_as_unexpected(monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(policyqa.cli, "load_settings", interrupt)
    result = runner.invoke(app, ["judge", "hello there"])
    assert result.exit_code != 0 and "unexpected" not in result.output


# --- 10, 11, 13: resuming and ending a batch -----------------------------------------------------

@pytest.mark.slow
def test_a_torn_last_line_is_cut_off_and_its_row_redone(loaded, tmp_path):
    source, target = tmp_path / "m.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"id": "a", "text": "lunch at noon?"}\n{"id": "b", "text": "selling fake ID cards, dm me"}\n')
    target.write_text('{"id": "a", "verdict": "no_violation"}\n{"id": "b", "verdict": "viol')  # killed mid-write
    result = runner.invoke(app, ["judge", "--file", str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and rows[1]["verdict"] == "violation"


@pytest.mark.slow
def test_repeated_ids_lose_no_row_on_resume(loaded, tmp_path):
    source, target = tmp_path / "m.csv", tmp_path / "out.jsonl"
    source.write_text("id,text\nx,lunch at noon?\nx,selling fake ID cards\ny,the archery club meets Sunday\n")
    target.write_text('{"id": "x", "verdict": "no_violation"}\n')
    result = runner.invoke(app, ["judge", "--file", str(source), "--out", str(target)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert Counter(r["id"] for r in rows) == {"x": 2, "y": 1}
    assert rows[1]["message"] == "selling fake ID cards"


@pytest.mark.slow
def test_a_batch_in_which_every_row_failed_exits_1(loaded, tmp_path):
    source = tmp_path / "m.jsonl"
    source.write_text('{"id": "a", "text": ""}\nnot json\n')
    result = runner.invoke(app, ["judge", "--file", str(source)])
    assert result.exit_code == 1
    assert "2 error rows" in result.stderr and "every one of the 2 rows failed" in result.stderr
    fine = tmp_path / "n.jsonl"
    fine.write_text('{"id": "a", "text": ""}\n{"id": "b", "text": "lunch at noon?"}\n')
    result = runner.invoke(app, ["judge", "--file", str(fine)])
    assert result.exit_code == 0 and "1 error rows" in result.stderr


@pytest.mark.slow
def test_an_over_long_csv_field_is_an_error_row_of_its_own(loaded, tmp_path):
    source = tmp_path / "m.csv"
    source.write_text(f'id,text\nbig,"{"fake ID " * 20_000}"\nok,lunch at noon?\n')
    result = runner.invoke(app, ["judge", "--file", str(source)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["big", "ok"] and "limit" in rows[0]["error"] and rows[1]["verdict"]
