"""Intake's HTTP API for partner agencies: consultations, contacts, consent and personal details."""

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Form, Header, Request, status
from pydantic import BaseModel

from services.intake import service
from services.intake.models import (
    FIELD_LABELS,
    AuditEntryPublic,
    CasePublic,
    ConsentCreate,
    ConsentPublic,
    ConsentRevoke,
    ConsultationAccepted,
    ConsultationCreate,
    ContactAccepted,
    ContactCreate,
    DuplicateCandidate,
    IntakeIdempotencyRecord,
    PersonalDetailsRelease,
    TokenResponse,
)
from shared import db, idempotency
from shared.api import PrincipalDep, RuntimeDep, require_any
from shared.auth import AuthProblem, Principal, Scope, TokenIssuer, require
from shared.problems import Problem, problem_responses
from shared.runtime import Runtime

router = APIRouter(prefix="/v1")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=idempotency.MAX_KEY_LENGTH,
        description="Retry safely with the same key: the first response is returned and nothing is created twice.",
    ),
]


async def _idempotent(
    runtime: Runtime,
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    work: Any,
    status_code: int,
) -> dict[str, Any]:
    # Only a request with a key is compared with an earlier one.
    fingerprint = (
        "" if key is None else idempotency.fingerprint(request.method, request.url.path, body.model_dump(mode="json"))
    )

    def run() -> dict[str, Any]:
        response, _replayed = idempotency.run(
            runtime.engine,
            IntakeIdempotencyRecord,
            agency_id=principal.agency_id,
            key=key,
            request_fingerprint=fingerprint,
            status_code=status_code,
            work=work,
        )
        return response

    response = await anyio.to_thread.run_sync(run)
    runtime.notify_outbox()
    return response


@router.post(
    "/token",
    tags=["credentials"],
    response_model=TokenResponse,
    responses=problem_responses(401, 422),
)
async def token(
    runtime: RuntimeDep,
    grant_type: Annotated[str, Form(pattern="^client_credentials$")],
    client_id: Annotated[str, Form(min_length=1, max_length=100)],
    client_secret: Annotated[str, Form(min_length=1, max_length=200)],
) -> TokenResponse:
    """Exchange an agency's client credentials for a bearer token (OAuth 2.0 client credentials grant)."""

    def work() -> Any:
        with db.transaction(runtime.engine) as session:
            return service.authenticate_client(session, client_id=client_id, client_secret=client_secret)

    credential = await anyio.to_thread.run_sync(work)
    if credential is None:
        raise AuthProblem("unknown client, wrong secret, or revoked credential", challenge="Basic")
    issuer: TokenIssuer = runtime.state["issuer"]
    scopes = [Scope(s) for s in credential.scopes]
    access_token, expires_in = issuer.issue(credential.agency_id, scopes, municipalities=credential.municipalities)
    return TokenResponse(access_token=access_token, expires_in=expires_in, scope=" ".join(credential.scopes))


@router.post(
    "/consultations",
    tags=["consultations"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ConsultationAccepted,
    responses=problem_responses(400, 401, 403, 409, 422),
)
async def submit_consultation(
    body: ConsultationCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Submit a consultation about a household; it opens a case that is routed asynchronously.

    Personal details of members are optional, stored encrypted in intake only, and never published.
    Cases that may be the same household are offered as links in `possible_duplicates`.
    """
    require(principal, Scope.submit)
    service.validate_place(body, runtime.state["directories"], FIELD_LABELS)

    def work(session: Any) -> dict[str, Any]:
        submitted = service.submit(session, body=body, agency_id=principal.agency_id, vault=runtime.state["vault"])
        return ConsultationAccepted(
            case_id=submitted.case_id,
            consultation_id=submitted.consultation_id,
            received_at=submitted.received_at,
            possible_duplicates=[
                DuplicateCandidate(case_id=d, add_contact=f"/v1/cases/{d}/contacts")
                for d in submitted.possible_duplicates
            ],
        ).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 202)


@router.post(
    "/cases/{case_id}/contacts",
    tags=["consultations"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ContactAccepted,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def add_contact(
    case_id: str,
    body: ContactCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Add a later consultation about the same household to its case (counts in 延べ, not in 実件数)."""
    require(principal, Scope.submit)

    def work(session: Any) -> dict[str, Any]:
        case = service.get_case(session, case_id)
        service.require_access(session, case, principal, allowed=service.WORK_ACCESS)
        contact = service.add_contact(session, case=case, body=body, agency_id=principal.agency_id)
        return ContactAccepted(case_id=case.id, contact_id=contact.id, received_at=contact.received_at).model_dump(
            mode="json"
        )

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 202)


@router.get("/cases", tags=["cases"], response_model=list[CasePublic], responses=problem_responses(401, 403, 422))
async def list_cases(runtime: RuntimeDep, principal: PrincipalDep) -> list[CasePublic]:
    """Cases your agency submitted, is engaged on, or completed a referral of, newest first."""
    require(principal, Scope.read_own)

    def work() -> list[CasePublic]:
        with db.transaction(runtime.engine) as session:
            return [
                CasePublic.model_validate(
                    service.timeline(session, c, access=service.require_access(session, c, principal))
                )
                for c in service.list_cases(session, principal)
            ]

    return await anyio.to_thread.run_sync(work)


@router.get(
    "/cases/{case_id}", tags=["cases"], response_model=CasePublic, responses=problem_responses(401, 403, 404, 422)
)
async def get_case(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> CasePublic:
    """A case's timeline: status, routing decision, contacts, referrals and consents (no personal details).

    For its submitting agency, agencies with a live referral, operators, and agencies whose referral
    was completed (the history they took part in); not for one whose referral was rejected, cancelled
    or failed.
    """
    require(principal, Scope.read_own)

    def work() -> CasePublic:
        with db.transaction(runtime.engine) as session:
            case = service.get_case(session, case_id)
            access = service.require_access(session, case, principal)
            return CasePublic.model_validate(service.timeline(session, case, access=access))

    return await anyio.to_thread.run_sync(work)


@router.post(
    "/cases/{case_id}/consents",
    tags=["consent"],
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def record_consent(
    case_id: str,
    body: ConsentCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record 本人同意 to share members' personal details with agencies (the submitting agency only).

    The consent is published with who gave it as a code (`given_by`), never a name.
    """
    require(principal, Scope.submit)

    def work(session: Any) -> dict[str, Any]:
        case = service.get_case(session, case_id)
        if service.require_access(session, case, principal) != "submitter":
            raise Problem(403, "not-the-submitter", "only the agency that submitted the case records its consent")
        consent = service.record_consent(session, case=case, body=body, agency_id=principal.agency_id)
        return ConsentPublic.model_validate(consent.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)


@router.post(
    "/cases/{case_id}/consents/{consent_id}/revocation",
    tags=["consent"],
    response_model=ConsentPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def revoke_consent(
    case_id: str,
    consent_id: str,
    body: ConsentRevoke,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Revoke a consent: sharing stops now and the revocation is published (submitting agency or operator).

    The event carries the coded `reason` only; the free-text `note` is kept in intake.
    """
    require_any(principal, Scope.submit, Scope.operator)

    def work(session: Any) -> dict[str, Any]:
        case = service.get_case(session, case_id)
        if service.require_access(session, case, principal) not in {"submitter", "operator"}:
            raise Problem(403, "not-the-submitter", "only the submitting agency or an operator revokes consent")
        consent = service.revoke_consent(session, case=case, consent_id=consent_id, body=body)
        return ConsentPublic.model_validate(consent.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 200)


@router.get(
    "/cases/{case_id}/personal-details",
    tags=["consent"],
    response_model=PersonalDetailsRelease,
    responses=problem_responses(401, 403, 404, 422),
)
async def read_personal_details(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> PersonalDetailsRelease:
    """Personal details of a case's members, for the submitting agency or an engaged agency with consent.

    Engaged means a live referral (requested, received, accepted, in_progress, on_hold); an agency
    whose referral was completed, rejected, cancelled or failed is refused.

    Every attempt, granted or refused, is written to the audit log.
    """
    require(principal, Scope.read_own)

    def work() -> tuple[PersonalDetailsRelease | None, str]:
        with db.transaction(runtime.engine) as session:
            case = service.get_case(session, case_id)
            return service.release_personal_details(
                session, case=case, principal=principal, vault=runtime.state["vault"]
            )

    release, reason = await anyio.to_thread.run_sync(work)
    if release is None:
        raise Problem(403, "personal-details-refused", reason)
    return release


@router.get(
    "/audit-log", tags=["consent"], response_model=list[AuditEntryPublic], responses=problem_responses(401, 403, 422)
)
async def read_audit_log(
    runtime: RuntimeDep, principal: PrincipalDep, case_id: str | None = None
) -> list[AuditEntryPublic]:
    """Reads of personal details, newest first (operators)."""
    require(principal, Scope.operator)

    def work() -> list[AuditEntryPublic]:
        with db.transaction(runtime.engine) as session:
            return [
                AuditEntryPublic.model_validate(e.model_dump()) for e in service.audit_log(session, case_id=case_id)
            ]

    return await anyio.to_thread.run_sync(work)
