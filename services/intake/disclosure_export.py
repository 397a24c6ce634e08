"""開示 (disclosure request, 個人情報保護法 Art. 33 / Art. 76): what intake holds about a household, and its
disclosure ledger, as a machine-readable JSON document and a printable Japanese HTML page.

The household is the case asked about with every case linked to it as the same household
(`service.household_of`). The export names nothing of any other household: a possible same household
that was not linked (`Case.possible_duplicates`, open or dismissed `HouseholdMatch` rows), and the ledger
and audit rows of other cases, stay out. A 転居 names the household's own case in the other
municipality (its id and code), never that case's contents: that municipality answers its own 開示請求.

A request is answered at once (status `disclosed`); every read of its export re-builds it from what is
held at that moment, so a later read may show more than the first (new ledger rows, a new link).
"""

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator
from pydantic import Field as DataField
from sqlmodel import Session, col, select

from services.intake import service
from services.intake.handoff import PERSONAL_LABELS, RELATION_LABELS
from services.intake.models import (
    FIELD_LABELS,
    AuditEntry,
    AuditEntryPublic,
    Case,
    Consent,
    Contact,
    DisclosurePublic,
    Engagement,
    Member,
    PersonalDetailVersion,
    SubjectRequest,
    SubjectRequestPublic,
    TransferIn,
    TransferOut,
)
from services.intake.privacy import Vault, decrypt_details
from shared.auth import Principal
from shared.calendar import JST
from shared.errors import NotFound
from shared.events import ConsentGiver, ConsentRevocationReason
from shared.ids import new_id
from shared.privacy_policy import IntakePolicy
from shared.vocabulary import ISSUE_TAG_LABELS, PATTERN_LABELS, REFERRAL_STATUS_LABELS, ROUTE_LABELS

FORMAT: Final = "marugoto.disclosure-export/1"
DISCLOSURE = "disclosure"
DISCLOSED = "disclosed"
ExportFormat = Literal["json", "html"]
# Before the APPI (2003) there was no 開示請求 to record; it also keeps dates far from the calendar's ends.
EARLIEST_RECEIPT = datetime(2003, 5, 30, tzinfo=UTC)


class DisclosureRequestNotFound(NotFound):
    """No 開示請求 of that id on the case (also what is said of another case's request)."""

    code = "disclosure-request-not-found"


# --- API shapes -------------------------------------------------------------------------------


class DisclosureRequestCreate(BaseModel):
    """Body of POST /v1/cases/{id}/disclosure-requests: the household asks what is held about it (開示請求)."""

    model_config = ConfigDict(extra="forbid")

    requested_by: ConsentGiver = DataField(
        description="請求者, as a code: self 本人, family 家族, guardian 成年後見人等, legal_representative "
        "法定代理人・任意代理人, other その他. Never a name."
    )
    received_at: AwareDatetime | None = DataField(
        default=None, description="受付日時 (default: now; not in the future). The deadline counts from it."
    )
    note: str | None = DataField(
        default=None,
        min_length=1,
        max_length=500,
        description="経緯 (free text): stored in intake only, never published; shown to operators and in the export.",
    )

    @field_validator("received_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        # A minute's grace for clocks that differ a little.
        if value > datetime.now(UTC) + timedelta(minutes=1):
            raise ValueError("a request cannot be received in the future")
        if value < EARLIEST_RECEIPT:
            raise ValueError(f"a request received before {EARLIEST_RECEIPT.date()} is not one of this system's")
        return value


class DisclosureRequestAccepted(BaseModel):
    """Response to a recorded 開示請求: the request (answered at once) and where to read its export."""

    request: SubjectRequestPublic
    export_json: str = DataField(description="GET here for the export as JSON (machine-readable)")
    export_html: str = DataField(description="GET here for the export as a printable HTML page (Japanese)")


class ExportMember(BaseModel):
    """A household member as held: relation, age, issues, and the personal details decrypted."""

    position: int
    relation: str
    age: int | None
    issues: list[str]
    name: str | None
    kana: str | None
    birth_date: str | None
    address: str | None
    phone: str | None


class ExportCorrection(BaseModel):
    """An earlier version of a member's personal details, replaced by a 訂正: who, why, and the values then held."""

    member: int
    version: int = DataField(description="the version this correction made (1: as submitted)")
    fields: list[str]
    previous: dict[str, str] = DataField(description="the values the correction replaced, as they were held")
    corrected_by: str
    reason: str
    note: str | None
    at: datetime


class ExportContact(BaseModel):
    """A consultation (相談) about the case, with the facts recorded at it."""

    id: str
    kind: str
    submitted_by: str
    received_at: datetime
    pathway: str | None
    found_by: str | None
    facts: dict[str, Any]


class ExportConsent(BaseModel):
    """A 本人同意 and its revocation, as held."""

    id: str
    given_by: ConsentGiver
    members: list[int]
    share_with: list[str]
    municipalities: list[str]
    purpose: str
    recorded_by: str
    given_at: datetime
    revoked_at: datetime | None
    revocation_reason: ConsentRevocationReason | None
    revocation_note: str | None


class ExportEngagement(BaseModel):
    """An agency engaged on the case by a referral, and where its part stands."""

    referral_id: str
    agency_id: str
    agency_type: str
    status: str
    updated_at: datetime


class ExportCase(BaseModel):
    """One case of the household, with everything intake holds on it."""

    id: str
    municipality_code: str
    submitted_by: str
    opened_at: datetime
    closed_at: datetime | None
    status: str
    tier: int | None
    lead: str | None
    patterns: list[str]
    resource_gaps: list[str]
    urgency: str
    directory_version: str | None
    use_restricted_since: datetime | None
    erased_at: datetime | None
    erasure_reason: str | None
    transferred_to: TransferOut | None
    transferred_from: TransferIn | None
    members: list[ExportMember]
    corrections: list[ExportCorrection] = DataField(
        default=[], description="訂正: earlier versions of members' personal details, oldest first"
    )
    contacts: list[ExportContact]
    consents: list[ExportConsent]
    engagements: list[ExportEngagement]
    requests: list[SubjectRequestPublic]


class DisclosureExport(BaseModel):
    """What intake holds about one household and every release or refusal of it, for a 開示請求."""

    format: Literal["marugoto.disclosure-export/1"] = FORMAT
    generated_at: datetime = DataField(description="When it was built: each read re-builds it from what is held now")
    request: SubjectRequestPublic
    case_id: str = DataField(description="The case the request was made on")
    municipality_code: str
    household: list[str] = DataField(description="The case and every case linked to it as the same household")
    cases: list[ExportCase]
    disclosures: list[DisclosurePublic] = DataField(description="The disclosure ledger of the household, oldest first")
    audit_log: list[AuditEntryPublic] = DataField(
        description="Every attempt to read the household's personal details, and each 開示 export, oldest first"
    )


# --- recording and building -------------------------------------------------------------------


def record_request(
    session: Session, *, case: Case, body: DisclosureRequestCreate, principal: Principal, policy: IntakePolicy
) -> SubjectRequest:
    """Record a 開示請求 on the case, answered now by its export, with the municipality's deadline."""
    now = datetime.now(UTC)
    received_at = body.received_at or now
    request = SubjectRequest(
        id=new_id(),
        case_id=case.id,
        kind=DISCLOSURE,
        requested_by=body.requested_by.value,
        received_at=received_at,
        recorded_by=principal.agency_id,
        status=DISCLOSED,
        note=body.note,
        closed_at=now,
        closed_by=principal.agency_id,
        deadline=received_at + timedelta(days=policy.requests.answer_within_days),
    )
    session.add(request)
    _audit(session, case, principal, "disclosure_export.answered", f"開示請求 {request.id} answered by its export")
    return request


def get_request(session: Session, case: Case, request_id: str) -> SubjectRequest:
    """The case's 開示請求 of that id; DisclosureRequestNotFound otherwise."""
    request = session.get(SubjectRequest, request_id)
    if request is None or request.case_id != case.id or request.kind != DISCLOSURE:
        raise DisclosureRequestNotFound(f"no disclosure request {request_id} on case {case.id}")
    return request


def record_export(
    session: Session, *, case: Case, request: SubjectRequest, principal: Principal, export_format: ExportFormat
) -> None:
    """Write the export's read to the audit log (it holds every personal detail of the household)."""
    _audit(session, case, principal, "disclosure_export.read", f"開示請求 {request.id} exported as {export_format}")


def _audit(session: Session, case: Case, principal: Principal, action: str, detail: str) -> None:
    session.add(
        AuditEntry(agency_id=principal.agency_id, case_id=case.id, action=action, outcome="granted", detail=detail)
    )


def build(session: Session, *, case: Case, request: SubjectRequest, vault: Vault) -> DisclosureExport:
    """The household's export as of now: its cases (linked ones included), ledger and audit log."""
    household = sorted(service.household_of(session, case.id))
    cases = session.exec(select(Case).where(col(Case.id).in_(household)).order_by(col(Case.opened_at))).all()
    audit = session.exec(
        select(AuditEntry).where(col(AuditEntry.case_id).in_(household)).order_by(col(AuditEntry.id))
    ).all()
    return DisclosureExport(
        generated_at=datetime.now(UTC),
        request=SubjectRequestPublic.model_validate(request.model_dump()),
        case_id=case.id,
        municipality_code=case.municipality_code,
        household=[c.id for c in cases],
        cases=[_case(session, c, vault) for c in cases],
        disclosures=[
            DisclosurePublic.model_validate(d.model_dump()) for d in service.household_disclosures(session, case)
        ],
        audit_log=[AuditEntryPublic.model_validate(a.model_dump()) for a in audit],
    )


def _case(session: Session, case: Case, vault: Vault) -> ExportCase:
    members = session.exec(select(Member).where(Member.case_id == case.id).order_by(col(Member.position))).all()
    corrections = session.exec(
        select(PersonalDetailVersion)
        .where(PersonalDetailVersion.case_id == case.id)
        .order_by(col(PersonalDetailVersion.position), col(PersonalDetailVersion.version))
    ).all()
    contacts = session.exec(
        select(Contact).where(Contact.case_id == case.id).order_by(col(Contact.received_at), col(Contact.id))
    ).all()
    consents = session.exec(
        select(Consent).where(Consent.case_id == case.id).order_by(col(Consent.given_at), col(Consent.id))
    ).all()
    engagements = session.exec(
        select(Engagement).where(Engagement.case_id == case.id).order_by(col(Engagement.referral_id))
    ).all()
    requests = session.exec(
        select(SubjectRequest)
        .where(SubjectRequest.case_id == case.id)
        .order_by(col(SubjectRequest.received_at), col(SubjectRequest.id))
    ).all()
    transferred_to = (
        TransferOut(
            municipality_code=case.transferred_to_municipality or "",
            case_id=case.transferred_to_case_id,
            reason=case.transfer_reason or "",
            transferred_by=case.transferred_by or "",
            transferred_at=case.transferred_at,
        )
        if case.transferred_at is not None
        else None
    )
    transferred_from = (
        TransferIn(municipality_code=case.transferred_from_municipality or "", case_id=case.transferred_from_case_id)
        if case.transferred_from_case_id is not None
        else None
    )
    return ExportCase(
        **case.model_dump(
            include={
                "id",
                "municipality_code",
                "submitted_by",
                "opened_at",
                "closed_at",
                "status",
                "tier",
                "lead",
                "patterns",
                "resource_gaps",
                "urgency",
                "directory_version",
                "use_restricted_since",
                "erased_at",
                "erasure_reason",
            }
        ),
        transferred_to=transferred_to,
        transferred_from=transferred_from,
        members=[_member(m, vault) for m in members],
        corrections=[_correction(v, vault) for v in corrections],
        contacts=[
            ExportContact(
                id=c.id,
                kind=c.kind,
                submitted_by=c.submitted_by,
                received_at=c.received_at,
                pathway=c.facts.get("pathway"),
                found_by=c.facts.get("found_by"),
                facts=c.facts,
            )
            for c in contacts
        ],
        consents=[ExportConsent.model_validate(c.model_dump()) for c in consents],
        engagements=[ExportEngagement.model_validate(e.model_dump()) for e in engagements],
        requests=[SubjectRequestPublic.model_validate(r.model_dump()) for r in requests],
    )


def _correction(version: PersonalDetailVersion, vault: Vault) -> ExportCorrection:
    return ExportCorrection(
        member=version.position,
        version=version.version,
        fields=version.fields,
        previous={field: vault.cipher.decrypt(token) for field, token in version.previous.items()},
        corrected_by=version.corrected_by,
        reason=version.reason,
        note=version.note,
        at=version.at,
    )


def _member(member: Member, vault: Vault) -> ExportMember:
    details = decrypt_details(member.personal, vault.cipher).model_dump(mode="json")
    return ExportMember(
        position=member.position,
        relation=member.relation,
        age=member.age,
        issues=member.issues,
        **{field: details.get(field) for field, _ in PERSONAL_LABELS},
    )


# --- the printable page -----------------------------------------------------------------------

_STYLE = """
body { font-family: "Hiragino Kaku Gothic ProN", "Noto Sans JP", "Yu Gothic", sans-serif; color: #111;
       max-width: 60rem; margin: 2rem auto; line-height: 1.5; }
h1 { font-size: 1.5rem; border-bottom: 2px solid #111; padding-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #555; }
h3 { font-size: 1.05rem; margin-top: 1.25rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: .75rem; }
th, td { border: 1px solid #555; padding: .2rem .4rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #eee; }
table.kv th { width: 16rem; }
.en { font-weight: normal; font-size: .85em; color: #444; }
.note { font-size: .9rem; }
.pre { white-space: pre-wrap; }
@page { size: A4; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9.5pt; }
  th { background: none; }
  tr { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

# Nothing but the page's own inline style: no script, image, font or link may load, whatever the data holds.
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
JSON_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

REQUESTER_LABELS = {
    "self": "本人",
    "family": "家族",
    "guardian": "成年後見人等",
    "legal_representative": "法定代理人・任意代理人",
    "other": "その他",
}
REQUEST_KIND_LABELS = {"disclosure": "開示", "use_restriction": "利用停止", "correction": "訂正", "erasure": "消去"}
REQUEST_STATUS_LABELS = {"disclosed": "開示済み", "in_effect": "実施中", "lifted": "解除"}
OUTCOME_LABELS = {"released": "提供", "refused": "拒否", "granted": "許可"}
BASIS_LABELS = {
    "consent": "本人同意",
    "engagement": "支援への参加",
    "support_meeting": "支援会議",
    "emergency": "緊急（生命・身体・財産の保護）",
    "operator": "市町村の運用担当",
    "none": "根拠なし（拒否）",
}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return escape("、".join(value))
    return escape(json.dumps(value, ensure_ascii=False, default=str))


def _coded(labels: Mapping[str, str], code: str | None) -> str:
    """A code with its Japanese name, e.g. 本人 (self)."""
    if code is None:
        return ""
    label = labels.get(code)
    return f"{escape(label)} ({escape(code)})" if label else escape(code)


def _head(ja: str, en: str) -> str:
    return f'{escape(ja)} <span class="en">{escape(en)}</span>'


def _rows(pairs: list[tuple[str, str, str]]) -> str:
    return "".join(f"<tr><th>{_head(ja, en)}</th><td>{value}</td></tr>" for ja, en, value in pairs)


def _table(columns: list[tuple[str, str]], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="note">（なし） None</p>'
    head = "".join(f"<th>{_head(ja, en)}</th>" for ja, en in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(facts: Mapping[str, Any]) -> str:
    return "<br>".join(f"{escape(FIELD_LABELS.get(key, key))}: {_text(value)}" for key, value in facts.items())


def _requests_table(requests: list[SubjectRequestPublic]) -> str:
    return _table(
        [
            ("種類", "Kind"),
            ("請求者", "Requested by"),
            ("受付", "Received"),
            ("期限", "Deadline"),
            ("状況", "Status"),
            ("終了", "Closed"),
            ("経緯", "Note"),
            ("記録ID", "Id"),
        ],
        [
            [
                _coded(REQUEST_KIND_LABELS, r.kind),
                _coded(REQUESTER_LABELS, r.requested_by.value),
                _text(r.received_at),
                _text(r.deadline),
                _coded(REQUEST_STATUS_LABELS, r.status),
                _text(r.closed_at),
                f'<span class="pre">{_text(r.note)}</span>'
                + (f'<br><span class="pre">{_text(r.close_note)}</span>' if r.close_note else ""),
                _text(r.id),
            ]
            for r in requests
        ],
    )


def _case_section(case: ExportCase) -> str:
    overview = _rows(
        [
            ("ケースID", "Case id", _text(case.id)),
            ("市町村コード", "Municipality", _text(case.municipality_code)),
            ("受付機関", "Submitted by", _text(case.submitted_by)),
            ("開始", "Opened", _text(case.opened_at)),
            ("終結", "Closed", _text(case.closed_at)),
            ("状況", "Status", _text(case.status)),
            ("圏域の段階", "Tier", _text(case.tier)),
            ("協働の中核", "Lead", _text(case.lead)),
            ("類型", "Patterns", ", ".join(_coded(PATTERN_LABELS, p) for p in case.patterns)),
            ("社会資源の不足", "Resource gaps", _text(case.resource_gaps)),
            ("緊急度", "Urgency", _text(case.urgency)),
            ("利用停止", "Use restricted since", _text(case.use_restricted_since)),
            ("個人情報の消去", "Personal details erased", f"{_text(case.erased_at)} {_text(case.erasure_reason)}"),
            (
                "転出",
                "Moved to",
                ""
                if case.transferred_to is None
                else f"{_text(case.transferred_to.municipality_code)} {_text(case.transferred_to.case_id)} "
                f"{_text(case.transferred_to.transferred_at)}",
            ),
            (
                "転入",
                "Moved from",
                ""
                if case.transferred_from is None
                else f"{_text(case.transferred_from.municipality_code)} {_text(case.transferred_from.case_id)}",
            ),
        ]
    )
    members = _table(
        [("番号", "No."), ("続柄", "Relation"), ("年齢", "Age"), ("課題", "Issues")]
        + [(ja, field) for field, ja in PERSONAL_LABELS],
        [
            [
                str(m.position + 1),
                _coded(RELATION_LABELS, m.relation),
                _text(m.age),
                "、".join(_coded(ISSUE_TAG_LABELS, tag) for tag in m.issues),
                *(_text(getattr(m, field)) for field, _ in PERSONAL_LABELS),
            ]
            for m in case.members
        ],
    )
    corrections = _table(
        [
            ("番号", "No."),
            ("版", "Version"),
            ("訂正した項目", "Fields"),
            ("訂正前の値", "Previous values"),
            ("訂正者", "By"),
            ("理由", "Reason"),
            ("経緯", "Note"),
            ("日時", "At"),
        ],
        [
            [
                str(v.member + 1),
                _text(v.version),
                "、".join(_text(field) for field in v.fields),
                "、".join(f"{_text(field)}: {_text(value)}" for field, value in v.previous.items()),
                _text(v.corrected_by),
                _text(v.reason),
                _text(v.note),
                _text(v.at),
            ]
            for v in case.corrections
        ],
    )
    contacts = _table(
        [
            ("日時", "Received"),
            ("種別", "Kind"),
            ("受付機関", "Submitted by"),
            ("経路", "Pathway"),
            ("内容", "Facts"),
            ("記録ID", "Id"),
        ],
        [
            [
                _text(c.received_at),
                "初回 (opening)" if c.kind == "opening" else "継続 (follow-up)",
                _text(c.submitted_by),
                _coded(ROUTE_LABELS, c.pathway),
                _facts(c.facts),
                _text(c.id),
            ]
            for c in case.contacts
        ],
    )
    consents = _table(
        [
            ("同意者", "Given by"),
            ("対象者", "Members"),
            ("共有先", "Share with"),
            ("利用目的", "Purpose"),
            ("同意日時", "Given"),
            ("撤回", "Revoked"),
            ("記録ID", "Id"),
        ],
        [
            [
                _coded(REQUESTER_LABELS, c.given_by.value),
                "、".join(str(p + 1) for p in c.members),
                _text(c.share_with + [f"転居先 {m}" for m in c.municipalities]),
                _text(c.purpose),
                _text(c.given_at),
                ""
                if c.revoked_at is None
                else f'{_text(c.revoked_at)} {_text(c.revocation_reason)} <span class="pre">{_text(c.revocation_note)}'
                "</span>",
                _text(c.id),
            ]
            for c in case.consents
        ],
    )
    engagements = _table(
        [("機関", "Agency"), ("種別", "Type"), ("状況", "Status"), ("更新", "Updated"), ("紹介ID", "Referral")],
        [
            [
                _text(e.agency_id),
                _text(e.agency_type),
                _coded(REFERRAL_STATUS_LABELS, e.status),
                _text(e.updated_at),
                _text(e.referral_id),
            ]
            for e in case.engagements
        ],
    )
    return (
        f"<section><h2>{_head('ケース', 'Case')} {_text(case.id)}</h2><table class='kv'>{overview}</table>"
        f"<h3>{_head('世帯員', 'Household members')}</h3>{members}"
        f"<h3>{_head('個人情報の訂正の履歴', 'Corrections of personal details')}</h3>{corrections}"
        f"<h3>{_head('相談の記録', 'Consultations')}</h3>{contacts}"
        f"<h3>{_head('本人同意', 'Consents')}</h3>{consents}"
        f"<h3>{_head('関わる支援機関', 'Agencies engaged')}</h3>{engagements}"
        f"<h3>{_head('世帯からの請求', 'Requests of the household')}</h3>{_requests_table(case.requests)}</section>"
    )


def render_html(export: DisclosureExport) -> str:
    """The export as a printable HTML page (A4, Japanese with English), every value escaped."""
    request = export.request
    summary = _rows(
        [
            ("請求者", "Requested by", _coded(REQUESTER_LABELS, request.requested_by.value)),
            ("受付日時", "Received", _text(request.received_at)),
            ("回答期限", "Deadline", _text(request.deadline)),
            ("作成日時", "Generated", _text(export.generated_at)),
            ("市町村コード", "Municipality", _text(export.municipality_code)),
            ("世帯のケース", "Cases of the household", _text(export.household)),
            ("経緯", "Note", f'<span class="pre">{_text(request.note)}</span>'),
            ("請求ID", "Request id", _text(request.id)),
        ]
    )
    ledger = _table(
        [
            ("日時", "At"),
            ("ケースID", "Case"),
            ("提供先", "Recipient"),
            ("経路", "Channel"),
            ("項目", "Fields"),
            ("根拠", "Basis"),
            ("根拠の参照", "Basis ref"),
            ("結果", "Outcome"),
            ("提供元", "Released by"),
            ("緊急提供の理由", "Emergency note"),
            ("記録ID", "Id"),
        ],
        [
            [
                _text(d.at),
                _text(d.case_id),
                _text(d.recipient),
                _text(d.channel),
                _text(" ".join(d.fields)),
                _coded(BASIS_LABELS, d.basis),
                _text(d.basis_ref),
                _coded(OUTCOME_LABELS, d.outcome),
                _text(d.released_by),
                f'<span class="pre">{_text(d.note)}</span>',
                _text(d.id),
            ]
            for d in export.disclosures
        ],
    )
    audit = _table(
        [
            ("日時", "At"),
            ("ケースID", "Case"),
            ("機関", "Agency"),
            ("操作", "Action"),
            ("結果", "Outcome"),
            ("詳細", "Detail"),
        ],
        [
            [
                _text(a.at),
                _text(a.case_id),
                _text(a.agency_id),
                _text(a.action),
                _coded(OUTCOME_LABELS, a.outcome),
                _text(a.detail),
            ]
            for a in export.audit_log
        ],
    )
    cases = "".join(_case_section(case) for case in export.cases)
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>保有個人情報の開示 Disclosure of personal information held</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_head("保有個人情報の開示", "Disclosure of personal information held")}</h1>
<p class="note">この書面は、世帯について相談支援のネットワーク（受付）が保有する情報と、その提供・提供拒否の記録の
すべてです（作成日時現在）。他の世帯の情報は含みません。日時は日本時間です。
This is everything intake holds about the household and every release or refusal of it, as of the time
generated. It holds nothing about any other household. Times are in Japan time (JST).</p>
<section><h2>{_head("開示請求", "Disclosure request")}</h2><table class="kv">{summary}</table></section>
{cases}
<section><h2>{_head("提供記録", "Disclosure ledger")}</h2>{ledger}</section>
<section><h2>{_head("個人情報の閲覧記録", "Audit log of reads")}</h2>{audit}</section>
</body>
</html>
"""
