"""The disclosure ledger's event: every release of case information to an agency, with its legal basis.

A service that releases case information (a feed entry, a decision, a meeting invitation or record)
stages one `DisclosureRecorded` in the same transaction as the release, so the ledger row exists
exactly when the release does. Intake keeps every household's ledger from these events (and writes
its own releases — case reads, personal details — there directly), append-only, for a 開示請求.
"""

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlmodel import Session

from shared import outbox
from shared.events import DisclosureBasis, DisclosureChannel, DisclosureRecorded, new_event
from shared.ids import new_id
from shared.outbox import OutboxBase


def stage_disclosure(
    session: Session,
    outbox_model: type[OutboxBase],
    *,
    source: str,
    municipality_code: str,
    case_id: str,
    recipient: str,
    channel: DisclosureChannel,
    fields: Iterable[str],
    basis: DisclosureBasis,
    basis_ref: str | None = None,
    released: bool = True,
    at: datetime | None = None,
) -> DisclosureRecorded:
    """Stage the ledger row of one release (or refusal: `released=False`, basis `none`) in the outbox."""
    data = DisclosureRecorded(
        disclosure_id=new_id(),
        case_id=case_id,
        recipient=recipient,
        channel=channel,
        fields=sorted(set(fields)),
        basis=basis if released else "none",
        basis_ref=basis_ref if released else None,
        outcome="released" if released else "refused",
        released_by=source,
        at=at or datetime.now(UTC),
    )
    outbox.stage(
        session, outbox_model, new_event(data, source=source, subject=case_id, municipality_code=municipality_code)
    )
    return data
