"""Problem details for failures of the database: an outage is a 503 to retry, a bug stays a 500."""

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

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
