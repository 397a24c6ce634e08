"""RFC 9457 problem details for every HTTP error of every service."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import is_transient
from shared.errors import Conflict, DomainError, Gone, Invalid, NotAllowed, NotFound

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://marugoto.example/problems/"
# Seconds a client is told to wait before retrying while the database is unavailable.
DATABASE_RETRY_AFTER_S = 2


# The one mapping from the domain's kinds of error to HTTP statuses.
STATUS_OF_KIND: dict[type[DomainError], int] = {
    NotFound: 404,
    NotAllowed: 403,
    Conflict: 409,
    Gone: 410,
    Invalid: 422,
}


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error, by the kind it is a subclass of."""
    for kind, status in STATUS_OF_KIND.items():
        if isinstance(error, kind):
            return status
    return 422


class Problem(Exception):
    """An error of the HTTP edge itself (authentication) that maps to one problem document."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra


def problem_response(request: Request, *, status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response for `status`, typed by `slug`."""
    body = {
        "type": PROBLEM_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install(app: FastAPI, field_labels: dict[str, str] | None = None) -> None:
    """Map domain problems, validation errors and HTTP errors of `app` to problem documents."""
    labels = field_labels or {}

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, status=exc.status, slug=exc.slug, detail=exc.detail, **exc.extra)

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem_response(request, status=status_of(exc), slug=exc.code, detail=exc.detail, **exc.extra)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"] if part != "body"]
            field = ".".join(location)
            leaf = next((p for p in reversed(location) if not p.isdigit()), "")
            errors.append(
                {"field": field, "label": labels.get(leaf, leaf), "message": error["msg"], "type": error["type"]}
            )
        return problem_response(
            request,
            status=422,
            slug="validation-error",
            detail=f"{len(errors)} field(s) are invalid",
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(request, status=exc.status_code, slug=f"http-{exc.status_code}", detail=str(exc.detail))

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if not is_transient(exc):
            raise exc  # a bug, not an outage: the server's 500
        # An outage is the client's cue to retry later, not a server bug; with an Idempotency-Key the
        # retry is safe even when the commit happened and only its answer was lost.
        response = problem_response(
            request, status=503, slug="database-unavailable", detail="the database is unavailable; retry shortly"
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_database)


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="dotted path of the field, e.g. household.0.issues.1")
    label: str = Field(description="the field's Japanese label")
    message: str
    type: str


class ProblemDocument(BaseModel):
    """An RFC 9457 problem details document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None


_DESCRIPTIONS = {
    400: "The request is malformed.",
    401: "No valid bearer token (problem+json).",
    403: "The credential may not do this (problem+json).",
    404: "Not found (problem+json).",
    409: "Conflicts with the current state (problem+json).",
    410: "Erased for good (problem+json).",
    422: "Invalid fields, listed one by one with their Japanese labels (problem+json).",
    503: "A dependency is unavailable (problem+json).",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json errors for `codes`."""
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, HTTPStatus(code).phrase),
            "model": ProblemDocument,
            "content": {PROBLEM_JSON: {}},
        }
        for code in codes
    }


_NUL_MARKERS = (b"\x00", b"\\u0000", b"%00")


def install_input_guard(app: FastAPI) -> None:
    """Refuse requests carrying NUL characters (PostgreSQL text cannot hold them) with a 422 problem."""
    app.add_middleware(NulGuard)


def _carries_nul(raw: bytes) -> bool:
    return any(marker in raw for marker in _NUL_MARKERS)


class NulGuard:
    """ASGI middleware answering a `/v1/` request whose target or body carries a NUL with a 422 problem.

    A plain ASGI class, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every
    request in a task group of its own and streams the response through a memory channel, a cost
    paid on every request for nothing this guard needs. The body is read here whole and handed on
    unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if _carries_nul(target.lower()):
            await self._refuse(scope, receive, send)
            return
        if scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body: there is no one to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _carries_nul(body):
            await self._refuse(scope, receive, send)
            return
        handed_on = False

        async def replay() -> Message:
            nonlocal handed_on
            if handed_on:
                return await receive()
            handed_on = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            status=422,
            slug="validation-error",
            detail="the request contains a NUL character",
            errors=[{"field": "", "label": "", "message": "NUL characters are not allowed", "type": "value_error"}],
        )
        await response(scope, receive, send)
