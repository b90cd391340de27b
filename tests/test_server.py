"""`policyqa serve`: a real uvicorn process on a loopback port, called over HTTP with httpx.

Results must equal the Python API's for the same texts; every refusal is a JSON {"error", "status"}
with the right status; an unusable index (missing, stale, corrupt) is a 503, never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from policyqa import ask, judge, judge_many
from policyqa.cli import app

POLICYQA = Path(sys.executable).parent / "policyqa"
KEY = "test-key-5f1c"
JSON = {"content-type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `policyqa serve` process and an httpx client for it."""

    def __init__(self, home: Path, log: Path, **env: str):
        self.port = _free_port()
        self.log = log
        environment = {k: v for k, v in os.environ.items() if k not in {"POLICYQA_CONFIG", "POLICYQA_API_KEY"}}
        environment.update(POLICYQA_HOME=str(home), HF_HUB_OFFLINE="1", **env)
        with log.open("wb") as sink:
            self.process = subprocess.Popen([str(POLICYQA), "serve", "--port", str(self.port)], env=environment,
                                            stdout=sink, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)

    def wait(self, timeout: float = 300) -> httpx.Response:
        """/readyz, once the server takes requests: after its index has loaded or failed to."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited:\n{self.log.read_text()[-3000:]}"
            try:
                return self.client.get("/readyz")
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start(tmp_path) -> Iterator:
    """start(home, **env) -> a Server taking requests; every one is stopped at teardown."""
    servers: list[Server] = []

    def _start(home: Path, **env: str) -> Server:
        server = Server(home, tmp_path / f"server-{len(servers)}.log", **env)
        servers.append(server)
        server.wait()
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(real_home, tmp_path_factory) -> Iterator[Server]:
    """One server on the real index, shared by this module's tests (it takes seconds to load)."""
    running = Server(real_home, tmp_path_factory.mktemp("server") / "server.log")
    try:
        assert running.wait().status_code == 200, running.log.read_text()[-3000:]
        yield running
    finally:
        running.stop()


def _problem(response: httpx.Response, status: int) -> str:
    """The error message of a JSON error response with this status (and nothing else in the body)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status and isinstance(body["error"], str)
    assert "Traceback" not in body["error"]
    return body["error"]


def _result(response: httpx.Response, real_index):
    """The result of a success envelope, after checking the envelope names the index that answered."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "index", "engine", "record_id"} and body["engine"] == "offline"
    assert body["index"] == {"fingerprint": real_index.fingerprint, "built_at": real_index.manifest["built_at"]}
    return body["result"]


def _assert_same(got, expected, where: str = "") -> None:
    """JSON values equal, floats to 1e-3: a batch and a single ruling agree to rounding."""
    if isinstance(expected, float) or isinstance(got, float):
        assert got == pytest.approx(expected, abs=1e-3), where
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (where, set(got) ^ set(expected))
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for n, (a, b) in enumerate(zip(got, expected)):
            _assert_same(a, b, f"{where}[{n}]")
    else:
        assert got == expected, where


# --- without the real index ---------------------------------------------------------------------------


def test_serve_has_help_and_other_commands_do_not_import_fastapi():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--workers" in result.output
    code = "import sys, policyqa.cli; print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]


def test_a_bad_setting_stops_serve_with_a_readable_error(monkeypatch):
    monkeypatch.setenv("POLICYQA_API_KEY", "  ")
    result = CliRunner().invoke(app, ["serve", "--port", str(_free_port())])
    assert result.exit_code == 1 and "api_key" in result.output and "blank" in result.output


def test_no_index_is_a_503_but_the_process_is_alive(start, tmp_path):
    server = start(tmp_path / "empty-home")
    assert "index missing" in _problem(server.client.get("/readyz"), 503)
    assert "policyqa index" in _problem(server.client.post("/v1/judge", json={"text": "fake ID cards"}), 503)
    assert "index missing" in _problem(server.client.get("/v1/clauses/weixin-standards/II.9.2"), 503)
    assert server.client.get("/healthz").json() == {"status": "alive"}
    assert server.client.get("/openapi.json").json()["paths"].keys() >= {"/v1/judge", "/v1/judge/batch", "/v1/search"}


# --- the real index ---------------------------------------------------------------------------------


MESSAGES = ["selling fake ID cards, any province, add my wx",
            "see you all at the hotpot place on Tuesday, 7pm",
            "代开各种发票，增值税专票，点数低，加我私聊"]


@pytest.mark.slow
def test_healthz_readyz_and_docs(server, real_index):
    assert server.client.get("/healthz").json() == {"status": "alive"}
    ready = server.client.get("/readyz").json()
    assert ready == {"status": "ready", "engine": "offline",
                     "index": {"fingerprint": real_index.fingerprint, "built_at": real_index.manifest["built_at"]}}
    assert server.client.get("/docs").status_code == 200


@pytest.mark.slow
def test_judge_equals_the_python_api(server, real_index):
    for text in MESSAGES:
        got = _result(server.client.post("/v1/judge", json={"text": text}), real_index)
        _assert_same(got, judge(text, index=real_index).model_dump(mode="json"), text)
    text = "I can issue fapiao invoices for any amount, 3% fee, add my wx"
    got = _result(server.client.post("/v1/judge", json={"text": text, "product": "weixin", "surface": "group"}), real_index)
    expected = judge(text, product="weixin", surface="group", index=real_index)
    _assert_same(got, expected.model_dump(mode="json"))
    assert got["verdict"] == "violation" and "weixin-standards/V.2" in [p["clause_id"] for p in got["penalties"]]


@pytest.mark.slow
def test_ask_equals_the_python_api(server, real_index):
    for text in ["Can I post photos of myself breastfeeding?", "Can I add customers in bulk?"]:
        got = _result(server.client.post("/v1/ask", json={"text": text}), real_index)
        _assert_same(got, ask(text, index=real_index).model_dump(mode="json"), text)
    got = _result(server.client.post("/v1/ask", json={"text": "Can I add customers in bulk?", "product": "wecom"}), real_index)
    _assert_same(got, ask("Can I add customers in bulk?", product="wecom", index=real_index).model_dump(mode="json"))


@pytest.mark.slow
def test_search_equals_index_search(server, real_index):
    hits = _result(server.client.post("/v1/search", json={"text": "selling fake ID cards", "top_k": 3}), real_index)
    _assert_same(hits, [h.model_dump(mode="json") for h in real_index.search("selling fake ID cards", top_k=3)])
    assert hits[0]["clause"]["clause_id"] == "weixin-standards/II.9.2" and len(hits) == 3
    hits = _result(server.client.post("/v1/search", json={"text": "selling fake ID cards", "product": "wecom"}), real_index)
    _assert_same(hits, [h.model_dump(mode="json") for h in real_index.search("selling fake ID cards", product="wecom")])
    assert hits and all("wecom" in h["clause"]["products"] for h in hits)


@pytest.mark.slow
def test_clause_by_id(server, real_index):
    clause = _result(server.client.get("/v1/clauses/weixin-standards/II.9.2"), real_index)
    assert clause == real_index.clause("weixin-standards/II.9.2").model_dump(mode="json")
    assert "weixin-standards/II.99" in _problem(server.client.get("/v1/clauses/weixin-standards/II.99"), 404)


@pytest.mark.slow
def test_batch_rules_every_good_row_and_reports_the_bad_one(server, real_index):
    items = [{"id": "a", "text": MESSAGES[0]}, {"id": "b", "text": "   "}, {"id": "a", "text": MESSAGES[1]},
             {"id": "c", "text": MESSAGES[2]}]
    rows = _result(server.client.post("/v1/judge/batch", json={"items": items}), real_index)
    assert [r["id"] for r in rows] == ["a", "b", "a", "c"]  # order kept, duplicate ids allowed
    assert rows[1] == {"id": "b", "error": "the message is empty; type a question or paste a message"}
    expected = judge_many([MESSAGES[0], MESSAGES[1], MESSAGES[2]], index=real_index)
    stamp = ("record_id", "recorded_at", "index_fingerprint", "model")
    for row, ruling in zip([rows[0], rows[2], rows[3]], expected):
        assert all(row.pop(key) for key in stamp)  # each row is in the audit trail
        _assert_same(row, {"id": row["id"], **ruling.model_dump(mode="json")})
    assert rows[0]["verdict"] == "violation" and rows[2]["verdict"] == "no_violation"
    wecom = _result(server.client.post("/v1/judge/batch", json={"items": items[:1], "product": "wecom"}), real_index)
    _assert_same({k: v for k, v in wecom[0].items() if k not in stamp},
                 {"id": "a", **judge(MESSAGES[0], product="wecom", index=real_index).model_dump(mode="json")})


@pytest.mark.slow
def test_rulings_are_audited_and_decided_over_http(server, real_index):
    post = server.client.post
    body = post("/v1/judge", json={"text": "the dice game tonight, bets via red packets, dm me"}).json()
    record_id = body["record_id"]
    record = _result(server.client.get(f"/v1/records/{record_id}"), real_index)
    assert record["verdict"] == body["result"]["verdict"] and record["source"] == "api" and record["decision"] is None
    decision = {"record_id": record_id, "reviewer": "ann", "verdict": "violation", "clause_ids": ["weixin-standards/II.9.2"],
                "note": "gambling"}
    decided = _result(post("/v1/decisions", json=decision), real_index)
    assert decided["verdict"] == "violation" and decided["reviewer"] == "ann"
    assert _result(server.client.get(f"/v1/records/{record_id}"), real_index)["decision"]["note"] == "gambling"
    assert record_id not in {r["record_id"] for r in _result(server.client.get("/v1/queue"), real_index)}
    assert "unknown clause" in _problem(post("/v1/decisions", json={**decision, "clause_ids": ["x/1"]}), 422)
    assert "no ruling or answer" in _problem(post("/v1/decisions", json={**decision, "record_id": "0" * 32}), 404)
    assert "no ruling or answer" in _problem(server.client.get("/v1/records/nope"), 404)


@pytest.mark.slow
def test_bad_requests_are_json_errors(server):
    post = server.client.post
    assert "empty" in _problem(post("/v1/judge", json={"text": ""}), 422)
    assert "empty" in _problem(post("/v1/ask", json={"text": " \n "}), 422)
    assert "unknown product 'myspace'" in _problem(post("/v1/judge", json={"text": "hi", "product": "myspace"}), 422)
    assert "unknown surface 'forum'" in _problem(post("/v1/judge", json={"text": "hi", "surface": "forum"}), 422)
    assert "unknown product" in _problem(post("/v1/search", json={"text": "hi", "product": "myspace"}), 422)
    assert "unknown product" in _problem(post("/v1/judge/batch", json={"items": [{"id": "1", "text": "hi"}],
                                                                       "product": "myspace"}), 422)
    assert "not valid JSON" in _problem(post("/v1/judge", content=b'{"text": "hi"', headers=JSON), 422)
    assert "body.text: Field required" in _problem(post("/v1/judge", json={"txt": "hi"}), 422)
    assert "limit is 20,000" in _problem(post("/v1/judge", json={"text": "fake ID " * 3000}), 422)
    items = [{"id": str(n), "text": "hi"} for n in range(1001)]
    assert "at most 1000 items" in _problem(post("/v1/judge/batch", json={"items": items}), 422)
    assert _problem(server.client.get("/v1/nowhere"), 404) == "Not Found"


@pytest.mark.slow
def test_oversized_bodies_are_refused_however_they_arrive(server):
    body = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert "over the limit" in _problem(server.client.post("/v1/judge", content=body, headers=JSON), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server must count as the bytes arrive
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = server.client.post("/v1/judge", content=chunked(), headers=JSON)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "over the limit" in _problem(response, 413)
    small = server.client.post("/v1/judge", content=iter([b'{"text": "fake ID cards', b', dm me"}']), headers=JSON)
    assert small.status_code == 200 and small.json()["result"]["verdict"] == "violation"


@pytest.mark.slow
def test_the_api_key_guards_v1_only(start, real_home, real_index):
    server = start(real_home, POLICYQA_API_KEY=KEY)
    search = {"text": "selling fake ID cards", "top_k": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        response = server.client.post("/v1/search", json=search, headers=headers)
        assert "API key" in _problem(response, 401) and response.headers["www-authenticate"] == "Bearer"
    # the key is checked before the body is read: no hint about the body to a caller without it
    _problem(server.client.post("/v1/judge", content=b"{", headers=JSON), 401)
    _problem(server.client.get("/v1/clauses/weixin-standards/II.9.2"), 401)
    hits = _result(server.client.post("/v1/search", json=search, headers={"Authorization": f"Bearer {KEY}"}), real_index)
    assert hits[0]["clause"]["clause_id"] == "weixin-standards/II.9.2"
    for open_path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert server.client.get(open_path).status_code == 200, open_path


@pytest.mark.slow
def test_a_stale_index_is_a_503(start, real_home, corpus_copy):
    (corpus_copy / "wecom-penalties.txt").write_text((corpus_copy / "wecom-penalties.txt").read_text() + "\nEdited.\n")
    server = start(real_home, POLICYQA_CORPUS_DIR=str(corpus_copy))
    assert "index stale" in _problem(server.client.get("/readyz"), 503)
    assert "policyqa index" in _problem(server.client.post("/v1/judge", json={"text": "fake ID cards"}), 503)


@pytest.mark.slow
def test_a_corrupt_index_is_a_503(start, real_home, tmp_path):
    home = tmp_path / "corrupt-home"
    shutil.copytree(real_home / "index", home / "index")
    with (home / "index" / "owners.npy").open("ab") as handle:
        handle.write(b"\0")
    server = start(home)
    assert "index corrupt" in _problem(server.client.get("/readyz"), 503)
    assert "index corrupt" in _problem(server.client.post("/v1/search", json={"text": "fake ID cards"}), 503)
