"""Problem details: database failures (an outage is a 503 to retry, a bug stays a 500) and the NUL guard."""

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.types import Message

from shared import problems


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.post("/v1/things")
    async def create() -> None:
        raise exc

    return app


async def post(app: FastAPI) -> httpx.Response:
    # The server's 500 for an unhandled error is an answer here, as it is over the network.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/v1/things")


async def test_database_unavailable_is_a_503_problem_with_retry_after() -> None:
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    response = await post(app_raising(refused))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(problems.DATABASE_RETRY_AFTER_S)
    body = response.json()
    assert body["type"].endswith("/database-unavailable")
    assert body["instance"] == "/v1/things"
    assert "connection refused" not in response.text, "the driver's message stays in the log"


async def test_lost_connection_is_a_503_too() -> None:
    lost = DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    assert (await post(app_raising(lost))).status_code == 503


async def test_a_broken_rule_in_the_database_is_not_an_outage() -> None:
    violated = IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert (await post(app_raising(violated))).status_code == 500


def guarded_echo() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    problems.install_input_guard(app)

    @app.post("/v1/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.get("/v1/search")
    async def search(q: str) -> dict[str, str]:
        return {"q": q}

    @app.post("/other")
    async def other(body: dict[str, Any]) -> int:
        return len(body["text"])

    return app


async def test_nul_in_a_body_or_target_is_a_422_problem_and_clean_requests_pass_unchanged() -> None:
    transport = httpx.ASGITransport(app=guarded_echo())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        clean = {"text": "相談 ok", "nested": {"n": 1}}
        assert (await client.post("/v1/echo", json=clean)).json() == clean
        assert (await client.get("/v1/search", params={"q": "8050"})).json() == {"q": "8050"}
        refused = [
            await client.post("/v1/echo", json={"text": "a\x00b"}),  # sent escaped, as \u0000
            await client.post("/v1/echo", content=b'{"text": "a\x00b"}', headers={"content-type": "application/json"}),
            await client.get("/v1/search?q=a%00b"),
        ]
        # Only the API under /v1/ is guarded.
        outside = await client.post("/other", json={"text": "a\x00b"})
    for response in refused:
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "the request contains a NUL character"
    assert refused[2].json()["instance"] == "/v1/search"
    assert outside.status_code == 200 and outside.json() == 3


async def test_the_guard_hands_on_a_body_sent_in_chunks_whole() -> None:
    sent: list[Message] = []
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"text": "first', "more_body": True},
        {"type": "http.request", "body": b' half, second"}', "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return chunks.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/echo",
        "raw_path": b"/v1/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "server": ("test", 80),
        "client": ("test", 1),
    }
    await guarded_echo()(scope, receive, send)
    assert sent[0]["status"] == 200
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:])) == {"text": "first half, second"}
