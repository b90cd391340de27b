"""`policyqa serve`: the HTTP API (FastAPI on uvicorn), a front end like the CLI and the web app.

It holds no retrieval or ruling logic: every endpoint calls the public API (ask, judge, judge_many,
run_rows, PolicyIndex.search, PolicyIndex.clause) on one index per worker process, loaded once at
startup and only read afterwards.

The contract, also in the README's "HTTP API" section:

- A success body is one envelope: {"result": ..., "index": {"fingerprint": {...}, "built_at": ...},
  "engine": "offline"}. `engine` is the configured engine; a ruling's or answer's own `engine` says
  which one decided (an LLM that failed falls back to the offline engine).
- Every answer and ruling is logged to the audit trail (the store); its envelope's `record_id` is what
  POST /v1/decisions names, and GET /v1/queue lists the rulings that still need review.
- An error body is {"error": "<message for the user>", "status": N}, never a traceback: 401 a missing
  or wrong API key, 404 an unknown clause, record or route, 413 a body over `max_request_bytes`, 422 bad
  input (the library's InvalidInputError, or a body that does not validate), 503 no usable index
  (missing, stale, corrupt), 500 anything unexpected (logged, not shown).
- A worker takes requests only once its index has loaded or failed to (the lifespan waits for it):
  with --workers 2, a request never reaches a worker that is still loading (loading in the background
  instead answered 503 "still loading" from one worker while /readyz said 200 from the other).
  After that /healthz always answers 200 and /readyz says whether the index is usable.
- Endpoints are plain `def`: a ruling is CPU-bound, so FastAPI runs them in its threadpool; the loaded
  index and its engine are safe to share between threads.
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import anyio.to_thread
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from policyqa import (Answer, AuditRecord, Clause, ConfigError, CorruptIndexError, Decision, Hit, IndexNotBuiltError,
                      InvalidInputError, PolicyIndex, PolicyQAError, RecordNotFoundError, Ruling, Settings,
                      StaleIndexError, ask, audit_recorder, judge, judge_many, llm_from_settings, load_settings,
                      new_batch_id, open_store, run_rows)

log = logging.getLogger("uvicorn.error")  # uvicorn's own log, so our lines appear with its formatting

MAX_BATCH_ITEMS = 1000
"""Items per /v1/judge/batch request; bigger jobs belong to `policyqa judge --file`."""

_WARM_UP = "warm-up: is this allowed?"
"""Judged once after loading, so the first real request does not pay for the engine's setup."""

T = TypeVar("T")


# --- request and response bodies -------------------------------------------------------------------


class _Body(BaseModel):
    # Unknown fields are refused: a misspelt "prodcut" must not silently rule without the product.
    model_config = ConfigDict(extra="forbid")


_PRODUCT = Field(None, description="Where the content is posted: weixin, wechat or wecom (corpus/products.toml).")
_SURFACE = Field(None, description="Where in the product: chat, group, moments or official-account.")


class AskRequest(_Body):
    text: str = Field(description="The question.", examples=["Can I post photos of myself breastfeeding?"])
    product: str | None = _PRODUCT


class JudgeRequest(_Body):
    text: str = Field(description="The pasted message.", examples=["selling fake ID cards, any province, add my wx"])
    product: str | None = _PRODUCT
    surface: str | None = _SURFACE


class BatchItem(_Body):
    id: str = Field(description="Echoed on the row's result; need not be unique.")
    text: str


class JudgeBatchRequest(_Body):
    items: list[BatchItem] = Field(max_length=MAX_BATCH_ITEMS, description=f"At most {MAX_BATCH_ITEMS:,} messages.")
    product: str | None = _PRODUCT
    surface: str | None = _SURFACE


class SearchRequest(_Body):
    text: str = Field(examples=["selling fake ID cards"])
    top_k: int | None = Field(None, ge=1, le=200, description="Hits to return (default: the top_k setting, 10).")
    product: str | None = Field(None, description="Only clauses of the documents governing this product.")


class DecisionRequest(_Body):
    record_id: str = Field(description="The record_id of the answer or ruling decided on.")
    reviewer: str = Field(min_length=1, max_length=120)
    agree: bool = Field(False, description="The verdict and clauses are right.")
    verdict: str | None = Field(None, description="Otherwise the right verdict: violation or no_violation for a "
                                                  "message; prohibited, allowed, informational or not_covered for a question.")
    clause_ids: list[str] = Field(default_factory=list, description="The clauses that decide it (needed for violation, prohibited).")
    note: str = ""


class BatchRuling(Ruling):
    """One batch row's ruling, with the row's id and its record in the audit trail."""

    id: str
    record_id: str
    recorded_at: str
    index_fingerprint: str
    model: str


class BatchError(BaseModel):
    """One batch row the library refused (an empty or overlong text, say); the other rows are still ruled."""

    model_config = ConfigDict(extra="forbid")
    id: str
    error: str


class IndexStamp(BaseModel):
    """Which index answered: compare fingerprints to know two answers came from the same build."""

    fingerprint: dict[str, str]
    built_at: str | None = None


class Envelope(BaseModel, Generic[T]):
    """Every success body: the result, the index that produced it and the configured engine; for an
    answer or ruling, its record id in the audit trail (what POST /v1/decisions names)."""

    result: T
    index: IndexStamp
    engine: str
    record_id: str | None = None


class Ready(BaseModel):
    status: str = "ready"
    index: IndexStamp
    engine: str


class Problem(BaseModel):
    """Every error body."""

    error: str
    status: int


# --- the worker's index ----------------------------------------------------------------------------


class _NotReady(PolicyQAError):
    """The index is not usable (yet): answered with 503 and the reason, as every PolicyQAError but bad input."""


_PROBLEM_KINDS = ((IndexNotBuiltError, "index missing"), (StaleIndexError, "index stale"),
                  (CorruptIndexError, "index corrupt"), (ConfigError, "configuration"))


class _Service:
    """The worker's loaded index (and LLM client, with the llm engine), or why there is none."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.index: PolicyIndex | None = None
        self.llm = None
        self.store = open_store(settings)
        self.problem = "the index has not been loaded"

    def load(self) -> None:
        started = time.perf_counter()
        try:
            index = PolicyIndex(self.settings).load(build="never")  # never builds: that takes minutes
            llm = llm_from_settings(self.settings) if self.settings.engine == "llm" else None
            if llm is None:
                judge(_WARM_UP, index=index, settings=self.settings)
            else:
                index.search(_WARM_UP)  # a warm-up ruling would call the LLM endpoint
        except PolicyQAError as exc:
            kind = next((label for error, label in _PROBLEM_KINDS if isinstance(exc, error)), "index unusable")
            self.problem = f"{kind}: {exc}"
            log.error("PolicyQA is not ready: %s", self.problem)
        except Exception:  # noqa: BLE001 - the app keeps running and says so on /readyz
            self.problem = "the index could not be loaded (unexpected error; see the server log)"
            log.exception("PolicyQA could not load the index")
        else:
            self.index, self.llm = index, llm
            log.info("PolicyQA index loaded from %s in %.1f s", self.settings.index_dir, time.perf_counter() - started)

    def ready(self) -> PolicyIndex:
        """The loaded index. Raises _NotReady saying why there is none."""
        if self.index is None:
            raise _NotReady(self.problem)
        return self.index

    def stamp(self) -> IndexStamp:
        index = self.ready()
        return IndexStamp(fingerprint=index.fingerprint, built_at=index.manifest.get("built_at"))

    def envelope(self, result: Any, record_id: str | None = None) -> dict[str, Any]:
        return {"result": result, "index": self.stamp(), "engine": self.settings.engine, "record_id": record_id}

    def recorder(self, kind: str, product: str | None = None, surface: str | None = None, batch_id: str | None = None):
        return audit_recorder(self.store, kind, self.ready(), source="api", product=product, surface=surface,
                              batch_id=batch_id)


def _service(request: Request) -> _Service:
    return request.app.state.service


# --- refusals before FastAPI reads a request --------------------------------------------------------


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class _Guard:
    """Refuses a request before FastAPI reads it: /v1/* without the API key (401), then a body over
    max_request_bytes (413), by Content-Length or, for a chunked body, by counting as it streams.

    Not FastAPI's own `max_body_size`: that answers in plain text when the endpoint reads no body,
    and it runs before the key check, so a caller without the key would get 413 instead of 401."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_bytes: int):
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        if self.api_key is not None and (path == "/v1" or path.startswith("/v1/")) and not self._authorised(headers):
            await _problem(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        too_large = _problem(413, f"the request body is over the limit of {self.max_bytes:,} bytes",
                             {"Connection": "close"})
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await (too_large if declared.isdigit() else _problem(400, "invalid Content-Length"))(scope, receive, send)
            return
        # Read the whole body here (at most max_bytes), then hand it on: the limit holds however it arrives.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)


# --- endpoints -------------------------------------------------------------------------------------


v1 = APIRouter(prefix="/v1")


@v1.post("/ask", response_model=Envelope[Answer], summary="Answer 'is this allowed?', citing the deciding clauses")
def ask_endpoint(body: AskRequest, request: Request) -> dict[str, Any]:
    service = _service(request)
    answer = ask(body.text, product=body.product, index=service.ready(), settings=service.settings, llm=service.llm)
    stamp = service.recorder("ask", body.product)([answer], [None])[0]
    return service.envelope(answer, stamp["record_id"])


@v1.post("/judge", response_model=Envelope[Ruling], summary="Rule on a pasted message")
def judge_endpoint(body: JudgeRequest, request: Request) -> dict[str, Any]:
    service = _service(request)
    ruling = judge(body.text, product=body.product, surface=body.surface, index=service.ready(),
                   settings=service.settings, llm=service.llm)
    stamp = service.recorder("judge", body.product, body.surface)([ruling], [None])[0]
    return service.envelope(ruling, stamp["record_id"])


@v1.post("/judge/batch", response_model=Envelope[list[BatchRuling | BatchError]],
         summary=f"Rule on up to {MAX_BATCH_ITEMS:,} messages; a refused row becomes an error row")
def judge_batch_endpoint(body: JudgeBatchRequest, request: Request) -> dict[str, Any]:
    service = _service(request)
    index = service.ready()
    index.check_product(body.product, body.surface)  # an unknown product fails the request, not every row
    rows = [{"id": item.id, "text": item.text} for item in body.items]
    records = list(run_rows(rows, lambda texts: judge_many(texts, product=body.product, surface=body.surface,
                                                            index=index, settings=service.settings, llm=service.llm),
                           record=service.recorder("judge", body.product, body.surface, new_batch_id("api"))))
    return service.envelope(records)


@v1.post("/decisions", response_model=Envelope[Decision], summary="Record a reviewer's decision on an answer or ruling",
         responses={404: {"model": Problem}})
def decision_endpoint(body: DecisionRequest, request: Request) -> dict[str, Any]:
    service = _service(request)
    known = {c.clause_id for c in service.ready().clauses}
    decision = service.store.decide(body.record_id, reviewer=body.reviewer, verdict=body.verdict, agree=body.agree,
                                    clause_ids=body.clause_ids, note=body.note, source="api", known_clause_ids=known)
    return service.envelope(decision, body.record_id)


@v1.get("/queue", response_model=Envelope[list[AuditRecord]], summary="Rulings that need review, oldest first")
def queue_endpoint(request: Request, source: str | None = None, product: str | None = None, batch_id: str | None = None,
                   contains: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    service = _service(request)
    return service.envelope(service.store.queue(source=source, product=product, batch_id=batch_id, contains=contains,
                                                limit=limit))


@v1.get("/records/{record_id}", response_model=Envelope[AuditRecord], summary="One audit record, with its decision",
        responses={404: {"model": Problem}})
def record_endpoint(record_id: str, request: Request) -> dict[str, Any]:
    service = _service(request)
    return service.envelope(service.store.get(record_id), record_id)


@v1.post("/search", response_model=Envelope[list[Hit]], summary="Rank clauses by meaning")
def search_endpoint(body: SearchRequest, request: Request) -> dict[str, Any]:
    service = _service(request)
    return service.envelope(service.ready().search(body.text, top_k=body.top_k, product=body.product))


@v1.get("/clauses/{clause_id:path}", response_model=Envelope[Clause], summary="One clause by id",
        responses={404: {"model": Problem}})
def clause_endpoint(clause_id: str, request: Request) -> dict[str, Any]:
    service = _service(request)
    try:
        clause = service.ready().clause(clause_id)
    except KeyError:
        raise HTTPException(404, f"no clause {clause_id!r}") from None
    return service.envelope(clause)


# Probes are `async def`, so they answer on the event loop even when every pool thread is busy ruling.
async def _health() -> dict[str, str]:
    return {"status": "alive"}


async def _ready(request: Request) -> dict[str, Any]:
    service = _service(request)
    return {"status": "ready", "index": service.stamp(), "engine": service.settings.engine}


# --- errors ----------------------------------------------------------------------------------------


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _problem(exc.status_code, str(exc.detail), exc.headers)


def _describe(error: dict[str, Any]) -> str:
    """Where and what, never the input itself (it may be a whole pasted message)."""
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')} at character {error['loc'][-1]})"
    return f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [_describe(error) for error in exc.errors()]
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return _problem(422, "; ".join(problems[:5]) + more)


async def _on_invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
    return _problem(422, str(exc))


async def _on_unknown_record(request: Request, exc: RecordNotFoundError) -> JSONResponse:
    return _problem(404, str(exc))


async def _on_policyqa_error(request: Request, exc: PolicyQAError) -> JSONResponse:
    # Anything but bad input means this server cannot answer as configured (index, settings, LLM).
    return _problem(503, str(exc))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this response, so uvicorn logs the traceback.
    return _problem(500, "internal server error (logged on the server)")


# --- the app ---------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP API for one worker. The index loads when the app starts (FastAPI lifespan); if it
    cannot load, the app still serves, and /readyz and /v1/* answer 503 saying why.

    Raises:
        ConfigError: the settings (POLICYQA_* variables, POLICYQA_CONFIG) are invalid.
    """
    settings = settings or load_settings()
    service = _Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await anyio.to_thread.run_sync(service.load)  # seconds of model loading, off the event loop
        yield

    app = FastAPIOffline(  # FastAPI serving /docs' Swagger UI files itself: no CDN on an offline machine
        title="PolicyQA",
        summary="Is this allowed? Verdicts from platform policies, citing the deciding clauses.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.service = service
    # Documents the key in /docs (its "Authorize" button); _Guard does the checking.
    bearer = [Security(HTTPBearer(auto_error=False, description="The POLICYQA_API_KEY."))] if settings.api_key else []
    problems = ((401,) if settings.api_key else ()) + (413, 422, 503)
    app.include_router(v1, dependencies=bearer, responses={code: {"model": Problem} for code in problems})
    app.add_api_route("/healthz", _health, methods=["GET"], summary="The process is alive (always 200)")
    app.add_api_route("/readyz", _ready, methods=["GET"], response_model=Ready, responses={503: {"model": Problem}},
                      summary="200 once the index is loaded; 503 with the reason otherwise")
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(InvalidInputError, _on_invalid_input)
    app.add_exception_handler(RecordNotFoundError, _on_unknown_record)
    app.add_exception_handler(PolicyQAError, _on_policyqa_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(_Guard, api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                       max_bytes=settings.max_request_bytes)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("policyqa")
    except PackageNotFoundError:
        return "0"


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API under uvicorn; each worker process loads its own copy of the index.

    Raises:
        ConfigError: the settings are invalid (checked here, before any worker starts).
    """
    import uvicorn

    load_settings()
    uvicorn.run("policyqa._server:create_app", factory=True, host=host, port=port, workers=workers)
