"""Intake's HTTP API: consultations, contacts, transfers (転居), consent, personal details, the disclosure ledger,
possible same households and the 支援会議 roster."""

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import Session

from services.intake import disclosure_export, requests, service, transfers
from services.intake.context import IntakeContext
from services.intake.errors import AgencyNotInDirectory, CaseNotFound, MunicipalityNotAdministered, NotTheSubmitter
from services.intake.models import (
    FIELD_LABELS,
    AuditEntryPublic,
    Case,
    CasePublic,
    ConsentCreate,
    ConsentPublic,
    ConsentRevoke,
    ConsultationAccepted,
    ConsultationCreate,
    ContactAccepted,
    ContactCreate,
    Disclosure,
    DisclosurePublic,
    DuplicateCandidate,
    EmergencyRelease,
    HouseholdMatchPublic,
    IntakeIdempotencyRecord,
    PersonalDetailsRelease,
    RosterEntryPublic,
    RosterEntryUpdate,
    SubjectRequestPublic,
    SupportMeetingMember,
    TokenResponse,
    TransferAccepted,
    TransferCreate,
    UseRestrictionCreate,
    UseRestrictionLift,
)
from shared import idempotency
from shared.api import PrincipalDep, RuntimeDep, context_of, in_transaction
from shared.auth import Principal, Scope, require, require_any, require_municipality
from shared.bearer import AuthProblem
from shared.directory import Directory
from shared.problems import problem_responses
from shared.runtime import Runtime

router = APIRouter(prefix="/v1")

IntakeContextDep = Annotated[IntakeContext, Depends(context_of(IntakeContext))]

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
    work: Callable[[Session], dict[str, Any]],
    status_code: int,
) -> dict[str, Any]:
    """Run `work` once per Idempotency-Key, off the event loop, in the transaction that records the key.

    `idempotency.run` opens its own transactions (a key raced by a concurrent request is retried), so
    this is the one place besides `in_transaction` that leaves the event loop; every caller stages events.
    """
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
    context: IntakeContextDep,
    grant_type: Annotated[str, Form(pattern="^client_credentials$")],
    client_id: Annotated[str, Form(min_length=1, max_length=100)],
    client_secret: Annotated[str, Form(min_length=1, max_length=200)],
) -> TokenResponse:
    """Exchange an agency's client credentials for a bearer token (OAuth 2.0 client credentials grant)."""
    credential = await in_transaction(
        runtime,
        lambda session: service.authenticate_client(session, client_id=client_id, client_secret=client_secret),
    )
    if credential is None:
        raise AuthProblem("unknown client, wrong secret, or revoked credential", challenge="Basic")
    scopes = [Scope(s) for s in credential.scopes]
    access_token, expires_in = context.issuer.issue(
        credential.agency_id, scopes, municipalities=credential.municipalities
    )
    return TokenResponse(access_token=access_token, expires_in=expires_in, scope=" ".join(credential.scopes))


@router.post(
    "/consultations",
    tags=["consultations"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ConsultationAccepted,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def submit_consultation(
    body: ConsultationCreate,
    request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Submit a consultation about a household; it opens a case that is routed asynchronously.

    Personal details of members are optional, stored encrypted in intake only, and never published.
    Cases your agency may already read that may be the same household are offered as links in
    `possible_duplicates`; any match goes to the municipality's lead coordinators, and the response
    is the same whether or not another agency knows the household.
    """
    require(principal, Scope.submit)
    require_municipality(principal, body.municipality_code)
    directory = service.validate_place(body, context.directories, FIELD_LABELS)

    def work(session: Session) -> dict[str, Any]:
        submitted = service.submit(
            session, body=body, principal=principal, vault=context.vault, directory_version=directory.version
        )
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
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Add a later consultation about the same household to its case (counts in 延べ, not in 実件数).

    It may bring new facts: members first seen now (`members`, appended after the known positions;
    their personal details stored encrypted, never published), issues newly seen on known members
    (`issues`), and a changed `urgency` (left out: unchanged). The router reassesses the case on them.
    A case whose coordination ended (終結) takes a contact as any other, and is the same case.
    """
    require(principal, Scope.submit)

    def work(session: Session) -> dict[str, Any]:
        case = service.get_case(session, case_id, principal)
        service.require_access(session, case, principal, allowed=service.WORK_ACCESS)
        contact = service.add_contact(session, case=case, body=body, agency_id=principal.agency_id, vault=context.vault)
        return ContactAccepted(case_id=case.id, contact_id=contact.id, received_at=contact.received_at).model_dump(
            mode="json"
        )

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 202)


@router.post(
    "/cases/{case_id}/transfers",
    tags=["cases"],
    status_code=status.HTTP_201_CREATED,
    response_model=TransferAccepted,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def transfer_case(
    case_id: str,
    body: TransferCreate,
    request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """転居: the household moved to another municipality (the municipality's lead coordinator or an operator).

    To a municipality this deployment serves, a new case opens there in `to_area` (required) and is
    routed under its directory; members' personal details go with it only where a live consent
    covers that municipality (`municipalities` of the consent), and that release is written to the
    disclosure ledger. To one outside it, no case opens: print the hand-off summary for the household.
    Both cases show the link; a case is transferred once (409 after), and stays readable as before.
    Anyone else is answered as for a case it cannot read (404), or, if it may read the case, 403.
    """

    def work(session: Session) -> dict[str, Any]:
        done = transfers.transfer(
            session, case_id=case_id, body=body, principal=principal, directories=context.directories
        )
        return TransferAccepted(
            case_id=done.case_id,
            to_municipality_code=done.to_municipality_code,
            to_case_id=done.to_case_id,
            personal_details_copied=done.personal_details_copied,
            transferred_at=done.transferred_at,
            handoff_summary=None if done.to_case_id else f"/v1/cases/{done.case_id}/handoff-summary",
        ).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)


@router.get(
    "/cases/{case_id}/handoff-summary",
    tags=["cases"],
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The printable hand-off summary (引継ぎ書), in Japanese",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def read_handoff_summary(
    case_id: str, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> HTMLResponse:
    """The hand-off summary (引継ぎ書) a household carries when it moved outside this deployment, to print.

    Its issues, the agencies that took part (named from the directory), the lead and the dates; personal
    details only of the members a live consent covering the receiving municipality covers. For the
    municipality's lead coordinator and operators; every attempt is written to the audit log and the
    disclosure ledger. A case that did not move outside the deployment has none (409).
    """
    outcome = await in_transaction(
        runtime,
        lambda session: transfers.handoff_summary(
            session, case_id=case_id, principal=principal, directories=context.directories, vault=context.vault
        ),
    )
    # A refusal is raised only now, once its audit entry and ledger row have committed.
    return HTMLResponse(outcome.page())


@router.get("/cases", tags=["cases"], response_model=list[CasePublic], responses=problem_responses(401, 403, 422))
async def list_cases(runtime: RuntimeDep, principal: PrincipalDep) -> list[CasePublic]:
    """Cases your agency submitted, is engaged on, or completed a referral of, newest first.

    Each case listed is a release of its timeline, written to the disclosure ledger.
    """
    require(principal, Scope.read_own)
    return await in_transaction(
        runtime, lambda session: [CasePublic.model_validate(view) for view in service.read_cases(session, principal)]
    )


@router.get(
    "/cases/{case_id}", tags=["cases"], response_model=CasePublic, responses=problem_responses(401, 403, 404, 422)
)
async def get_case(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> CasePublic:
    """A case's timeline: status, routing decision, contacts, referrals and consents (no personal details).

    For its submitting agency, agencies with a live referral, operators of its municipality, and
    agencies whose referral was completed (the history they took part in). Anyone else is answered
    as if the case did not exist (404). Every read, and every refused one, is written to the
    disclosure ledger.
    """
    require(principal, Scope.read_own)
    view = await in_transaction(runtime, lambda session: service.read_case(session, case_id, principal))
    if view is None:
        # Raised only now: the ledger's row of the refusal has committed.
        raise CaseNotFound(case_id)
    return CasePublic.model_validate(view)


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

    def work(session: Session) -> dict[str, Any]:
        case = service.get_case(session, case_id, principal)
        if service.require_access(session, case, principal) != "submitter":
            raise NotTheSubmitter("only the agency that submitted the case records its consent")
        consent = service.record_consent(session, case=case, body=body, agency_id=principal.agency_id)
        return ConsentPublic.model_validate(consent.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)


def _submitter_or_operator_case(session: Session, case_id: str, principal: Principal, does: str) -> Case:
    """The case, for its submitting agency or an operator; anyone else with a part in it hears
    NotTheSubmitter (saying who `does` it), anyone without one CaseNotFound."""
    case = service.get_case(session, case_id, principal)
    if service.require_access(session, case, principal) not in {"submitter", "operator"}:
        raise NotTheSubmitter(f"only the submitting agency or an operator {does}")
    return case


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

    def work(session: Session) -> dict[str, Any]:
        case = _submitter_or_operator_case(session, case_id, principal, "revokes consent")
        consent = service.revoke_consent(session, case=case, consent_id=consent_id, body=body)
        return ConsentPublic.model_validate(consent.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 200)


@router.post(
    "/cases/{case_id}/use-restriction",
    tags=["requests"],
    status_code=201,
    response_model=SubjectRequestPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def restrict_use(
    case_id: str,
    body: UseRestrictionCreate,
    request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record the household's 利用停止 (個人情報保護法 Art. 35), in effect now (submitting agency or operator).

    From now on no agency's feed or queue shows the case and personal details are released to no one on
    consent or 支援会議 membership (each refusal on the ledger), until it is lifted; the lead is told on
    its feed. 409 `use-already-restricted` if one is in effect.
    """
    require_any(principal, Scope.submit, Scope.operator)

    def work(session: Session) -> dict[str, Any]:
        case = _submitter_or_operator_case(session, case_id, principal, "records a 利用停止")
        answer_within_days = context.policy(case.municipality_code).requests.answer_within_days
        recorded = requests.restrict_use(
            session, case=case, body=body, principal=principal, answer_within_days=answer_within_days
        )
        return SubjectRequestPublic.model_validate(recorded.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)


@router.post(
    "/cases/{case_id}/use-restriction/lift",
    tags=["requests"],
    response_model=SubjectRequestPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def lift_use_restriction(
    case_id: str,
    body: UseRestrictionLift,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Lift the 利用停止 in effect (submitting agency or operator): feeds, queues and releases on their
    bases resume. 409 `use-not-restricted` if none is in effect."""
    require_any(principal, Scope.submit, Scope.operator)

    def work(session: Session) -> dict[str, Any]:
        case = _submitter_or_operator_case(session, case_id, principal, "lifts a 利用停止")
        lifted = requests.lift_use_restriction(session, case=case, body=body, principal=principal)
        return SubjectRequestPublic.model_validate(lifted.model_dump()).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 200)


@router.get(
    "/cases/{case_id}/requests",
    tags=["requests"],
    response_model=list[SubjectRequestPublic],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_requests(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> list[SubjectRequestPublic]:
    """The household's requests on the case with their outcome (submitting agency or operator)."""
    require_any(principal, Scope.submit, Scope.operator)

    def work(session: Session) -> list[SubjectRequestPublic]:
        case = _submitter_or_operator_case(session, case_id, principal, "reads the household's requests")
        return [SubjectRequestPublic.model_validate(r.model_dump()) for r in requests.requests_of(session, case)]

    return await in_transaction(runtime, work)


# --- 開示 (disclosure request) ------------------------------------------------------------------


def _operators_case(session: Session, case_id: str, principal: Principal) -> Case:
    """The case, for an operator of its municipality; anyone else hears CaseNotFound."""
    case = service.get_case(session, case_id, principal)
    service.require_operator_of(principal, case)
    return case


def _export_links(case_id: str, request_id: str) -> tuple[str, str]:
    base = f"/v1/cases/{case_id}/disclosure-requests/{request_id}/export"
    return f"{base}?format=json", f"{base}?format=html"


@router.post(
    "/cases/{case_id}/disclosure-requests",
    tags=["requests"],
    status_code=201,
    response_model=disclosure_export.DisclosureRequestAccepted,
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def record_disclosure_request(
    case_id: str,
    body: disclosure_export.DisclosureRequestCreate,
    request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record the household's 開示請求 (個人情報保護法 Art. 33 / Art. 76), answered at once by its export.

    For an operator of the case's municipality (the municipality answers it); anyone else gets 404, as
    for a case that does not exist. The request is `disclosed` now; its `deadline` is the receipt plus
    the municipality's `intake: requests: answer_within_days` (default 30). The export covers the case
    and every case linked to it as the same household, and nothing of any other household.
    """

    def work(session: Session) -> dict[str, Any]:
        case = _operators_case(session, case_id, principal)
        recorded = disclosure_export.record_request(
            session, case=case, body=body, principal=principal, policy=context.policy(case.municipality_code)
        )
        as_json, as_html = _export_links(case.id, recorded.id)
        return disclosure_export.DisclosureRequestAccepted(
            request=SubjectRequestPublic.model_validate(recorded.model_dump()), export_json=as_json, export_html=as_html
        ).model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)


@router.get(
    "/cases/{case_id}/disclosure-requests/{request_id}/export",
    tags=["requests"],
    response_model=disclosure_export.DisclosureExport,
    responses={
        200: {
            "description": "The export: JSON (format marugoto.disclosure-export/1) or a printable HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 404, 422),
    },
)
async def read_disclosure_export(
    case_id: str,
    request_id: str,
    http_request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    export_format: Annotated[
        Literal["json", "html"] | None,
        Query(alias="format", description="json or html (default: by the Accept header, else json)"),
    ] = None,
) -> Response:
    """The 開示 export of a recorded request: what intake holds about the household and its disclosure ledger.

    Re-built from what is held at each read (not a copy kept from when the request was answered), so a
    later read may show more; each read is written to the audit log. Operators of the case's
    municipality only (anyone else: 404).
    """
    chosen: disclosure_export.ExportFormat = export_format or (
        "html" if "text/html" in http_request.headers.get("accept", "") else "json"
    )

    def work(session: Session) -> disclosure_export.DisclosureExport:
        case = _operators_case(session, case_id, principal)
        recorded = disclosure_export.get_request(session, case, request_id)
        export = disclosure_export.build(session, case=case, request=recorded, vault=context.vault)
        disclosure_export.record_export(session, case=case, request=recorded, principal=principal, export_format=chosen)
        return export

    export = await in_transaction(runtime, work)
    if chosen == "html":
        return HTMLResponse(disclosure_export.render_html(export), headers=dict(disclosure_export.PAGE_HEADERS))
    return Response(
        export.model_dump_json(), media_type="application/json", headers=dict(disclosure_export.JSON_HEADERS)
    )


@router.get(
    "/cases/{case_id}/personal-details",
    tags=["consent"],
    response_model=PersonalDetailsRelease,
    responses=problem_responses(401, 403, 404, 422),
)
async def read_personal_details(
    case_id: str,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    basis: Annotated[
        Literal["consent", "support_meeting"],
        Query(
            description="consent: under 本人同意 (the members it covers); support_meeting: as a current member "
            "of the municipality's 支援会議 (社会福祉法 Art. 106-6), every member"
        ),
    ] = "consent",
) -> PersonalDetailsRelease:
    """Personal details of a case's members, for the submitting agency or an engaged agency with a legal basis.

    Engaged means a live referral (requested, received, accepted, in_progress, on_hold); an agency
    whose referral was completed is refused (403), and one with no part in the case is answered as
    if the case did not exist (404). A request with no basis is refused (403).

    Every attempt, granted or refused, is written to the audit log and the disclosure ledger.
    """
    require(principal, Scope.read_own)
    return await _release_details(runtime, context, principal, case_id, basis=basis, emergency=None)


@router.post(
    "/cases/{case_id}/personal-details/emergency-release",
    tags=["consent"],
    response_model=PersonalDetailsRelease,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def emergency_release(
    case_id: str, body: EmergencyRelease, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> PersonalDetailsRelease:
    """Personal details for an engaged agency without consent, to protect a person's life, body or property
    when consent is hard to obtain (個人情報保護法 Art. 27(1)(ii), Art. 69).

    The note saying why is required; it is kept in the disclosure ledger only and never published.
    """
    require(principal, Scope.read_own)
    return await _release_details(runtime, context, principal, case_id, basis="consent", emergency=body)


async def _release_details(
    runtime: Runtime,
    context: IntakeContext,
    principal: Principal,
    case_id: str,
    *,
    basis: service.PersonalDetailsBasis,
    emergency: EmergencyRelease | None,
) -> PersonalDetailsRelease:
    outcome = await in_transaction(
        runtime,
        lambda session: service.release_personal_details(
            session, case_id=case_id, principal=principal, vault=context.vault, basis=basis, emergency=emergency
        ),
    )
    # A refusal is raised only now, once its audit entry and ledger row have committed.
    return outcome.released()


@router.get(
    "/audit-log", tags=["consent"], response_model=list[AuditEntryPublic], responses=problem_responses(401, 403, 422)
)
async def read_audit_log(
    runtime: RuntimeDep, principal: PrincipalDep, case_id: str | None = None
) -> list[AuditEntryPublic]:
    """Reads of personal details in the municipalities you serve, newest first (operators)."""
    require(principal, Scope.operator)

    def work(session: Session) -> list[AuditEntryPublic]:
        return [
            AuditEntryPublic.model_validate(e.model_dump())
            for e in service.audit_log(session, principal=principal, case_id=case_id)
        ]

    return await in_transaction(runtime, work)


# --- the disclosure ledger --------------------------------------------------------------------


def _household_disclosures(session: Session, principal: Principal, case_id: str) -> list[Disclosure]:
    """The household's ledger, for an operator of the case's municipality (anyone else: CaseNotFound)."""
    case = service.get_case(session, case_id, principal)
    service.require_operator_of(principal, case)
    return service.household_disclosures(session, case)


@router.get(
    "/cases/{case_id}/disclosures",
    tags=["disclosure ledger"],
    response_model=list[DisclosurePublic],
    responses=problem_responses(401, 404, 422),
)
async def read_disclosures(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> list[DisclosurePublic]:
    """Every release of the household's information, and every refusal, oldest first, with its legal basis.

    The household is the case with every case linked to it as the same household. For answering a
    開示請求; operators of the case's municipality only (anyone else: 404).
    """

    def work(session: Session) -> list[DisclosurePublic]:
        return [
            DisclosurePublic.model_validate(d.model_dump()) for d in _household_disclosures(session, principal, case_id)
        ]

    return await in_transaction(runtime, work)


@router.get(
    "/cases/{case_id}/disclosures.csv",
    tags=["disclosure ledger"],
    response_class=Response,
    responses={
        200: {
            "description": "The ledger as CSV (UTF-8 with BOM)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 404, 422),
    },
)
async def export_disclosures(case_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """The household's disclosure ledger as CSV for a 開示請求 (headers in Japanese and English; operators)."""
    text = await in_transaction(
        runtime, lambda session: service.disclosures_csv(_household_disclosures(session, principal, case_id))
    )
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="disclosures-{case_id}.csv"'},
    )


# --- possible same households -----------------------------------------------------------------


@router.get(
    "/household-matches",
    tags=["household matches"],
    response_model=list[HouseholdMatchPublic],
    responses=problem_responses(401, 422),
)
async def list_household_matches(
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    match_status: Annotated[Literal["open", "linked", "dismissed"] | None, Query(alias="status")] = None,
) -> list[HouseholdMatchPublic]:
    """Possible same households (同一世帯の可能性) to link or dismiss, newest first.

    For coordinators of the municipality's lead agency (協働の中核) and its operators; anyone else gets
    an empty list. An item names two cases, never a person.
    """
    municipalities = service.deciding_municipalities(principal, context.directories)

    def work(session: Session) -> list[HouseholdMatchPublic]:
        return [
            HouseholdMatchPublic.model_validate(m.model_dump())
            for m in service.list_household_matches(session, municipalities=municipalities, status=match_status)
        ]

    return await in_transaction(runtime, work)


async def _decide(
    runtime: Runtime, context: IntakeContext, principal: Principal, match_id: str, *, link: bool
) -> HouseholdMatchPublic:
    municipalities = service.deciding_municipalities(principal, context.directories)

    def work(session: Session) -> HouseholdMatchPublic:
        match = service.decide_household_match(
            session, match_id=match_id, municipalities=municipalities, link=link, decided_by=principal.agency_id
        )
        return HouseholdMatchPublic.model_validate(match.model_dump())

    return await in_transaction(runtime, work, stages_events=True)


@router.post(
    "/household-matches/{match_id}/link",
    tags=["household matches"],
    response_model=HouseholdMatchPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def link_household_match(
    match_id: str, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> HouseholdMatchPublic:
    """Link the two cases as one household: shown on both timelines to whoever may read both, counted once in 実件数."""
    return await _decide(runtime, context, principal, match_id, link=True)


@router.post(
    "/household-matches/{match_id}/dismiss",
    tags=["household matches"],
    response_model=HouseholdMatchPublic,
    responses=problem_responses(401, 404, 409, 422),
)
async def dismiss_household_match(
    match_id: str, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> HouseholdMatchPublic:
    """Close the item: the two cases are different households."""
    return await _decide(runtime, context, principal, match_id, link=False)


# --- 支援会議 roster ---------------------------------------------------------------------------

MunicipalityCode = Annotated[str, Path(pattern=r"^\d{6}$", description="全国地方公共団体コード (6 digits)")]


def _administered(context: IntakeContext, principal: Principal, municipality_code: str) -> Directory:
    """The municipality's directory if `principal` administers it; MunicipalityNotAdministered otherwise."""
    directory = context.directories.get(municipality_code)
    if directory is None or not principal.has(Scope.admin) or not principal.serves(municipality_code):
        raise MunicipalityNotAdministered(f"no municipality {municipality_code} here")
    return directory


def _roster_entry(entry: SupportMeetingMember) -> RosterEntryPublic:
    return RosterEntryPublic(**entry.model_dump(), current=service.is_current(entry, service.local_today()))


@router.get(
    "/municipalities/{municipality_code}/support-meeting-roster",
    tags=["support meeting"],
    response_model=list[RosterEntryPublic],
    responses=problem_responses(401, 404, 422),
)
async def read_roster(
    municipality_code: MunicipalityCode, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> list[RosterEntryPublic]:
    """The municipality's 支援会議 roster (社会福祉法 Art. 106-6), past and current members (admins)."""
    _administered(context, principal, municipality_code)
    return await in_transaction(
        runtime, lambda session: [_roster_entry(e) for e in service.roster(session, municipality_code)]
    )


@router.put(
    "/municipalities/{municipality_code}/support-meeting-roster/{agency_id}",
    tags=["support meeting"],
    response_model=RosterEntryPublic,
    responses=problem_responses(400, 401, 404, 422),
)
async def put_roster_entry(
    municipality_code: MunicipalityCode,
    agency_id: str,
    body: RosterEntryUpdate,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
) -> RosterEntryPublic:
    """Make an agency of the directory a member of the 支援会議 from `member_from` (until `member_until`).

    The agency must have acknowledged the confidentiality duty (守秘義務); only then may case information
    be shared with it on this basis, and only while it is a member.
    """
    directory = _administered(context, principal, municipality_code)
    if directory.find_agency(agency_id) is None:
        raise AgencyNotInDirectory(f"no agency {agency_id} in the directory of {municipality_code}")

    def work(session: Session) -> RosterEntryPublic:
        entry = service.put_roster_entry(
            session, municipality_code=municipality_code, agency_id=agency_id, body=body, added_by=principal.agency_id
        )
        return _roster_entry(entry)

    return await in_transaction(runtime, work, stages_events=True)


@router.delete(
    "/municipalities/{municipality_code}/support-meeting-roster/{agency_id}",
    tags=["support meeting"],
    response_model=RosterEntryPublic,
    responses=problem_responses(401, 404, 422),
)
async def end_roster_entry(
    municipality_code: MunicipalityCode,
    agency_id: str,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
) -> RosterEntryPublic:
    """End an agency's membership now (its last day was yesterday); its entry is kept, with its dates."""
    _administered(context, principal, municipality_code)

    def work(session: Session) -> RosterEntryPublic:
        entry = service.end_roster_entry(
            session,
            municipality_code=municipality_code,
            agency_id=agency_id,
            today=service.local_today(),
            ended_by=principal.agency_id,
        )
        return _roster_entry(entry)

    return await in_transaction(runtime, work, stages_events=True)
