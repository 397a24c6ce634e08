"""The coordinators' console (調整員コンソール): one Japanese page where an agency's staff work their routed cases.

Include `router` in the router app. It serves the page at `/console`, its assets (the page's script and
styles, and Alpine.js's CSP build, bundled: the machines have no internet) at `/console/static/…`, the
labels the page shows at `/console/vocabulary.json`, and a same-origin pass-through to intake and
conference at `/console/api/{service}/v1/…`, so that the page calls every service without CORS.

The page is only a client of the services' APIs: it signs in with the agency's client credentials at
intake's `POST /v1/token` and keeps the access token in a script variable, never in storage, a cookie or
a URL. The pass-through holds no credential, sets no cookie, stores and logs no body: it forwards the
caller's own `Authorization`, and each service applies need-to-know to it exactly as to any client.
"""

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import httpx
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from services.router.feed import FeedEntryKind
from services.router.referrals import CLOSE_REASONS, REJECT_REASONS
from shared.events import PlanStatus, ReferralStatus
from shared.problems import problem_response
from shared.runtime import Runtime
from shared.vocabulary import (
    CLOSURE_REASON_LABELS,
    ISSUE_TAG_LABELS,
    MEETING_KIND_LABELS,
    PATTERN_LABELS,
    REFERRAL_STATUS_LABELS,
    ROUTE_LABELS,
    TIER_LABELS,
)

log = structlog.get_logger()

STATIC_DIR = Path(__file__).parent / "static" / "console"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_assets = StaticFiles(directory=STATIC_DIR)

# The services the page reaches through the pass-through; the router's own API is on this origin already.
UPSTREAM_SERVICES = ("intake", "conference")
# Request headers handed on; nothing else of the browser's (cookies, origin, forwarding headers) leaves.
FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "idempotency-key", "last-event-id")
# Response headers handed back: what the answer is, and what a refusal asks of the client; no cookie ever.
FORWARDED_RESPONSE_HEADERS = ("content-type", "www-authenticate", "retry-after")
FORWARDED_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]
# One path segment of an upstream API address: no empty, `.` or `..` segment can be formed from it.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
UPSTREAM_TIMEOUT_S = 30.0

# Only this page's own files, no inline script or style; every API is on the same origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

# The router's coded reasons (services/router/referrals.py), in Japanese.
REJECT_REASON_LABELS: dict[str, str] = {
    "out_of_scope": "対象外の相談",
    "no_capacity": "受入余力なし",
    "not_in_service_area": "担当区域外",
    "conflict_of_interest": "利益相反",
    "other": "その他",
}
CLOSE_REASON_LABELS: dict[str, str] = {
    "goals_met": "目標達成",
    "moved_away": "転居",
    "declined_by_person": "本人の辞退",
    "handed_over": "他機関へ引継ぎ",
    "no_contact": "連絡がとれない",
    "deceased": "死亡",
    "duplicate": "重複",
    "other": "その他",
}
FEED_KIND_LABELS: dict[str, str] = {
    "referral_requested": "新しい依頼",
    "status_changed": "状態の変更",
    "reminder": "受諾期限の督促",
    "escalated": "エスカレーション",
    "monitoring_due": "モニタリング期日",
    "monitoring_overdue": "モニタリング期限超過",
    "use_restricted": "利用停止",
    "use_restriction_lifted": "利用停止の解除",
    "personal_details_corrected": "個人情報の訂正",
}
# Why a decision engaged (or passed over) an agency, by the rule's id (services/router/rules.py), as staff
# say it; the pattern rules are labelled as patterns (PATTERN_LABELS). The test checks every rule has one.
RULE_LABELS: dict[str, str] = {
    "tier1_place": "住民に身近な圏域で丸ごと受け止める場",
    "general_window": "総合相談窓口",
    "lead": "協働の中核（推進員）",
    "partner": "課題に応じた連携先",
    "capacity": "受入上限に達したための交替",
    "confidential_exclusion": "秘匿を要する事例のため身近な場は関与しない",
    "prefecture_support_requested": "都道府県への支援要請",
    "return_to_community": "地域への戻し（見守り）",
    "reroute": "辞退による再振り分け",
    "reroute_to_lead": "協働の中核への戻し",
    "escalation": "受諾期限超過によるエスカレーション",
    **PATTERN_LABELS,
}
MEETING_STATUS_LABELS: dict[str, str] = {"scheduled": "予定", "held": "開催済み", "cancelled": "中止"}
PLAN_STATUS_LABELS: dict[str, str] = {"drafted": "案", "approved": "承認済み", "superseded": "改定済み"}
MATCH_STATUS_LABELS: dict[str, str] = {"open": "未確認", "linked": "同一世帯として連結", "dismissed": "別世帯"}
# Problem types (shared/problems.py: PROBLEM_BASE + slug) the page explains in Japanese; others show their detail.
PROBLEM_MESSAGES: dict[str, str] = {
    "unauthenticated": "サインインの有効期限が切れたか、認証情報が正しくありません。もう一度サインインしてください。",
    "forbidden": "この操作の権限がありません。",
    "illegal-transition": "現在の状態からはこの操作はできません（他の職員が先に操作した可能性があります）。",
    "reason-required": "この操作には理由の選択が必要です。",
    "not-your-referral": "この依頼は貴機関宛てではありません。",
    "not-the-lead": "この操作は協働の中核（推進員）のみが行えます。",
    "lead-cannot-reject": "協働の中核が最後に引き受けた依頼は辞退できません。",
    "last-open-referral": "この事例の最後の依頼のため、終了できません（担当のいない事例をつくらないため）。",
    "referral-not-found": "この依頼は表示できません。",
    "household-match-decided": "この項目は既に処理されています。",
    "household-match-not-found": "この項目は表示できません。",
    "personal-details-refused": "個人情報を表示する根拠（本人同意など）がありません。",
    "plan-reason-required": "支援プランの改定には理由が必要です。",
    "not-engaged": "役割分担・主担当には、この事例に関わる機関のみを指定できます。",
    "validation-error": "入力内容に誤りがあります。",
    "upstream-unavailable": "サービスに接続できません。しばらくしてから再度お試しください。",
    "database-unavailable": "サービスが一時的に利用できません。しばらくしてから再度お試しください。",
}


def _labelled(codes: Iterable[str], labels: Mapping[str, str]) -> dict[str, str]:
    """Each code with its label; a code added to the API before its label is shown as itself, not a failure."""
    return {code: labels.get(code, code) for code in codes}


def vocabulary() -> dict[str, dict[str, str]]:
    """Every label the page shows, from the vocabularies the API and the exports use."""
    return {
        "referral_statuses": _labelled(get_args(ReferralStatus), REFERRAL_STATUS_LABELS),
        "reject_reasons": _labelled(sorted(REJECT_REASONS), REJECT_REASON_LABELS),
        "close_reasons": _labelled(sorted(CLOSE_REASONS), CLOSE_REASON_LABELS),
        "issue_tags": {str(tag): label for tag, label in ISSUE_TAG_LABELS.items()},
        "tiers": {key.removeprefix("tier"): label for key, label in TIER_LABELS.items()},
        "patterns": dict(PATTERN_LABELS),
        "routes": {str(key): label for key, label in ROUTE_LABELS.items()},
        "meeting_kinds": dict(MEETING_KIND_LABELS),
        "closure_reasons": {str(key): label for key, label in CLOSURE_REASON_LABELS.items()},
        "feed_kinds": _labelled(get_args(FeedEntryKind), FEED_KIND_LABELS),
        "rules": dict(RULE_LABELS),
        "meeting_statuses": dict(MEETING_STATUS_LABELS),
        "plan_statuses": _labelled(get_args(PlanStatus), PLAN_STATUS_LABELS),
        "match_statuses": dict(MATCH_STATUS_LABELS),
        "problems": dict(PROBLEM_MESSAGES),
    }


@dataclass(frozen=True)
class Upstreams:
    """Where the pass-through reaches intake and conference, and the one HTTP client it uses."""

    client: httpx.AsyncClient
    base_urls: dict[str, str]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Runs inside the service's own lifespan, so its runtime (and settings) is there.
    runtime: Runtime = app.state.runtime
    base_urls = {service: runtime.settings.base_url(service).rstrip("/") for service in UPSTREAM_SERVICES}
    async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        app.state.console_upstreams = Upstreams(client=client, base_urls=base_urls)
        yield


async def _upstreams(request: Request) -> Upstreams:
    upstreams = request.app.state.console_upstreams
    assert isinstance(upstreams, Upstreams)
    return upstreams


UpstreamsDep = Annotated[Upstreams, Depends(_upstreams)]

router = APIRouter(include_in_schema=False, lifespan=_lifespan)


def page_html() -> str:
    """The page's markup (static: it carries no data; its script fetches everything with the agency's token)."""
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


@router.get("/console", name="coordinator_console", response_class=HTMLResponse, include_in_schema=False)
async def console_page() -> HTMLResponse:
    """The console page."""
    return HTMLResponse(page_html(), headers=_PAGE_HEADERS)


@router.get("/console/vocabulary.json", name="coordinator_console_vocabulary", include_in_schema=False)
async def console_vocabulary() -> JSONResponse:
    """The Japanese labels of the codes the APIs return (no case data; needs no token)."""
    return JSONResponse(vocabulary(), headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.api_route(
    "/console/static/{name}", methods=["GET", "HEAD"], name="coordinator_console_static", include_in_schema=False
)
async def console_static(name: str, request: Request) -> Response:
    """One file of `static/console/` (flat), with `StaticFiles`' ETag and conditional requests."""
    if not _ASSET_NAME.fullmatch(name) or name == "index.html":
        raise HTTPException(status_code=404)
    response = await _assets.get_response(name, request.scope)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.api_route(
    "/console/api/{service}/{path:path}",
    methods=FORWARDED_METHODS,
    name="coordinator_console_pass_through",
    include_in_schema=False,
)
async def pass_through(service: str, path: str, request: Request, upstreams: UpstreamsDep) -> Response:
    """Forward the page's call to intake's or conference's `/v1/` API and answer with what it answered."""
    # Checked as the client sent it (undecoded): an encoded `/` or `.` never forms a segment of its own.
    raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    _, _, forwarded = raw.partition(f"/console/api/{service}/")
    segments = forwarded.split("/")
    if (
        service not in UPSTREAM_SERVICES
        or len(segments) < 2
        or segments[0] != "v1"
        or not all(_SEGMENT.fullmatch(segment) for segment in segments)
    ):
        raise HTTPException(status_code=404)
    url = f"{upstreams.base_urls[service]}/{forwarded}"
    headers = {name: value for name, value in request.headers.items() if name.lower() in FORWARDED_REQUEST_HEADERS}
    body = await request.body()
    try:
        upstream = await upstreams.client.request(
            request.method, url, params=httpx.QueryParams(request.url.query), headers=headers, content=body
        )
    except httpx.TransportError as exc:
        log.warning("console_upstream_unreachable", service=service, error=type(exc).__name__)
        return problem_response(
            request, status=502, slug="upstream-unavailable", detail=f"the {service} service cannot be reached"
        )
    answer: dict[str, Any] = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    for name in FORWARDED_RESPONSE_HEADERS:
        if name in upstream.headers:
            answer[name] = upstream.headers[name]
    return Response(content=upstream.content, status_code=upstream.status_code, headers=answer)
