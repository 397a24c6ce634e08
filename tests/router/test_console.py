"""The coordinators' console without a browser: the page's headers, its assets, its labels, and the
same-origin pass-through to intake and conference (what it forwards, and what it refuses to)."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Literal, get_args

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.router import console, rules
from services.router.app import DEFINITION
from services.router.feed import FeedEntryKind
from services.router.referrals import CLOSE_REASONS, REJECT_REASONS
from shared import problems
from shared.embedded_broker import free_port
from shared.events import PlanStatus, ReferralStatus
from shared.settings import Settings
from shared.vocabulary import ISSUE_TAG_LABELS, MEETING_KIND_LABELS, PATTERN_LABELS, TIER_LABELS

STATIC_NAMES = ("console.js", "console.css", "alpine-csp.min.js", "alpine-csp.LICENSE.md", "README.md")


# --- a stand-in intake and conference, over real HTTP ------------------------------------------------


def upstream_app(name: str, seen: list[dict[str, Any]]) -> FastAPI:
    """A service that records every request it gets and answers as the real ones do (problem+json included)."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    async def anything(path: str, request: Request) -> Response:
        body = await request.body()
        seen.append(
            {
                "service": name,
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if path.endswith("refused"):
            return JSONResponse(
                {
                    "type": problems.PROBLEM_BASE + "illegal-transition",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "no",
                },
                status_code=409,
                media_type=problems.PROBLEM_JSON,
            )
        if path.endswith(".ics"):
            return Response(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", media_type="text/calendar; charset=utf-8")
        return JSONResponse(
            {"service": name, "path": request.url.path}, status_code=201 if request.method == "POST" else 200
        )

    return app


@contextmanager
def serving(app: FastAPI, *, lifespan: Literal["on", "off"] = "off") -> Iterator[int]:
    """`app` under uvicorn on a free port of 127.0.0.1, in a background thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def console_app(settings: Settings) -> FastAPI:
    """The console's routes on an app shaped like the router's (problem details, a runtime with settings)."""
    app = FastAPI()
    problems.install(app)
    app.include_router(console.router)
    app.state.runtime = SimpleNamespace(settings=settings)
    return app


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(seen: list[dict[str, Any]]) -> Iterator[httpx.Client]:
    """The console (its lifespan included) with intake up and conference down (nothing listens on its port)."""
    with serving(upstream_app("intake", seen)) as intake_port:
        settings = Settings(intake_port=intake_port, conference_port=free_port())
        with (
            serving(console_app(settings), lifespan="on") as port,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
        ):
            yield http


# --- the page and its assets ---------------------------------------------------------------------------


def test_the_router_serves_the_console() -> None:
    assert console.router in DEFINITION.routers


def test_page_has_a_strict_policy_and_no_inline_code(client: httpx.Client) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"):
        assert directive in policy
    assert "unsafe" not in policy, "no unsafe-inline nor unsafe-eval: Alpine's CSP build needs neither"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="ja">' in html and "調整員コンソール" in html
    assert "<script>" not in html and "<style" not in html and " style=" not in html and " onclick" not in html
    assert "https://" not in html and "cdn" not in html.lower(), "everything is served locally"
    assert set(console.FORWARDED_METHODS) >= {"GET", "POST"}
    assert "/console" not in client.get("/openapi.json").text, "not part of the API's schema"


def test_static_assets_are_only_the_folders_own_files(client: httpx.Client) -> None:
    for name in STATIC_NAMES:
        asset = client.get(f"/console/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["x-content-type-options"] == "nosniff"
    alpine = client.get("/console/static/alpine-csp.min.js")
    assert alpine.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert (
        client.get("/console/static/alpine-csp.min.js", headers={"If-None-Match": alpine.headers["etag"]}).status_code
        == 304
    )
    for outside in ("..%2Fconsole.py", "%2e%2e", "%2e%2e%2fconsole.py", ".hidden", "missing.js", "index.html"):
        assert client.get(f"/console/static/{outside}").status_code == 404, outside


def test_vocabulary_is_the_shared_one(client: httpx.Client) -> None:
    served = client.get("/console/vocabulary.json")
    assert served.status_code == 200
    vocabulary = served.json()
    assert vocabulary == console.vocabulary()
    assert vocabulary["issue_tags"] == {str(k): v for k, v in ISSUE_TAG_LABELS.items()}
    assert vocabulary["issue_tags"]["hikikomori"] == "ひきこもり"
    assert vocabulary["patterns"] == PATTERN_LABELS
    assert vocabulary["tiers"] == {"1": TIER_LABELS["tier1"], "2": TIER_LABELS["tier2"], "3": TIER_LABELS["tier3"]}
    assert vocabulary["meeting_kinds"] == MEETING_KIND_LABELS
    assert vocabulary["routes"]["self"] == "当事者"
    # Every code the router can answer with has a Japanese label: no state or reason shows as a bare code.
    assert set(vocabulary["referral_statuses"]) == set(get_args(ReferralStatus))
    assert set(vocabulary["reject_reasons"]) == REJECT_REASONS
    assert set(vocabulary["close_reasons"]) == CLOSE_REASONS
    assert set(vocabulary["feed_kinds"]) == set(get_args(FeedEntryKind))
    assert set(vocabulary["plan_statuses"]) == set(get_args(PlanStatus))
    # Every rule a decision can name as the reason an agency is engaged or passed over.
    assert set(vocabulary["rules"]) >= {v.id for v in vars(rules).values() if isinstance(v, rules.Rule)}
    assert vocabulary["referral_statuses"]["accepted"] == "受諾済み"
    unlabelled = [
        f"{group}.{code}"
        for group in ("referral_statuses", "reject_reasons", "close_reasons", "feed_kinds", "plan_statuses")
        for code, label in vocabulary[group].items()
        if label == code
    ]
    assert unlabelled == [], "a code the API answers with has no Japanese label in services/router/console.py"
    labels = [label for group in vocabulary.values() for label in group.values()]
    assert all(label.strip() for label in labels)


# --- the pass-through ------------------------------------------------------------------------------------


def test_forwards_method_path_query_body_and_only_the_allowed_headers(
    client: httpx.Client, seen: list[dict[str, Any]]
) -> None:
    answer = client.post(
        "/console/api/intake/v1/household-matches/abc-1/link?status=open&x=%E3%81%82",
        content=b'{"note": "x"}',
        headers={
            "Authorization": "Bearer the-agency-token",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": "key-1",
            "Last-Event-ID": "7",
            "Cookie": "session=secret",
            "X-Forwarded-For": "10.0.0.1",
            "Origin": "https://elsewhere.example",
            "X-Custom": "no",
        },
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"service": "intake", "path": "/v1/household-matches/abc-1/link"}
    assert answer.headers["cache-control"] == "no-store"
    assert "set-cookie" not in answer.headers
    [request] = seen
    assert (request["method"], request["path"]) == ("POST", "/v1/household-matches/abc-1/link")
    assert request["query"] == "status=open&x=%E3%81%82"
    assert request["body"] == b'{"note": "x"}'
    headers = request["headers"]
    assert headers["authorization"] == "Bearer the-agency-token"
    assert (headers["content-type"], headers["accept"]) == ("application/json", "application/json")
    assert (headers["idempotency-key"], headers["last-event-id"]) == ("key-1", "7")
    for withheld in ("cookie", "x-forwarded-for", "origin", "x-custom"):
        assert withheld not in headers, withheld


def test_a_form_post_and_a_calendar_pass_unchanged(client: httpx.Client, seen: list[dict[str, Any]]) -> None:
    token = client.post(
        "/console/api/intake/v1/token",
        data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "s"},
    )
    assert token.status_code == 201
    assert seen[-1]["body"] == b"grant_type=client_credentials&client_id=a&client_secret=s"
    assert seen[-1]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    calendar = client.get("/console/api/intake/v1/calendars/agency.ics")
    assert calendar.headers["content-type"] == "text/calendar; charset=utf-8"
    assert calendar.content == b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"


def test_a_problem_comes_back_as_the_service_said_it(client: httpx.Client) -> None:
    refused = client.post("/console/api/intake/v1/referrals/r/refused")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == problems.PROBLEM_JSON
    assert refused.json()["type"] == problems.PROBLEM_BASE + "illegal-transition"


def test_only_intake_and_conference_and_only_their_v1_api(client: httpx.Client, seen: list[dict[str, Any]]) -> None:
    for address in (
        "/console/api/metrics/v1/indicators",
        "/console/api/router/v1/referrals",
        "/console/api/INTAKE/v1/cases",
        "/console/api/intake/metrics",
        "/console/api/intake/docs",
        "/console/api/intake/v1",
        "/console/api/intake/v1/",
        "/console/api/intake/v1//cases",
        "/console/api/intake/v1/%2e%2e/%2e%2e/metrics",
        "/console/api/intake/v1/..%2F..%2Fmetrics",
        "/console/api/intake/v1/cases/%2e%2e",
        "/console/api/intake/%2e%2e/conference/v1/meetings",
        "/console/api/intake/v1/cases/a%2Fb",
        "/console/api/intake/v1/cases/.hidden",
    ):
        answer = client.get(address)
        assert answer.status_code == 404, address
        assert answer.headers["content-type"] == problems.PROBLEM_JSON, address
    assert seen == [], "nothing reached a service"


def test_an_unreachable_service_is_a_502_problem(client: httpx.Client) -> None:
    down = client.get("/console/api/conference/v1/meetings", headers={"Authorization": "Bearer t"})
    assert down.status_code == 502
    assert down.headers["content-type"] == problems.PROBLEM_JSON
    problem = down.json()
    assert problem["type"] == problems.PROBLEM_BASE + "upstream-unavailable"
    assert problem["status"] == 502 and "conference" in problem["detail"]
    assert "upstream-unavailable" in console.PROBLEM_MESSAGES, "the page explains it in Japanese"
