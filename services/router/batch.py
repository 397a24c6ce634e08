"""The router's unit of work: one transaction (a consumer batch, a request, a round of timers) and what
it has decided so far, read by the decisions, configurations and feed of the same transaction."""

from dataclasses import dataclass
from typing import Any

from services.router.cases import CaseView
from services.router.models import DecisionPublic
from shared.uow import UnitOfWork


@dataclass(frozen=True)
class PendingFeedEntry:
    """A feed entry of this transaction, numbered just before it commits (`feed.number_feed_entries`)."""

    entry: dict[str, Any]  # the FeedEntry row but for its sequence
    facts: CaseView
    published: dict[str, Any]  # the AgencyFeedEntry event but for its entry id


class RoutingBatch(UnitOfWork):
    """A router transaction: its rows (as every unit of work), and what the router keeps for it alone."""

    # Decisions made in this transaction, by case: its rows are not written yet, so they are found here.
    decided: dict[str, DecisionPublic]
    # The cases of the batch that were decided before it (`decisions.prepare_batch`); None if not prepared.
    decided_before: set[str] | None
    # The batch's cases with a later contact's facts waiting for their first decision (`PendingContact`);
    # None if not prepared (then each routed case looks for its own).
    contacts_waiting: set[str] | None
    # The directory version in force per municipality, read once per transaction.
    versions_in_force: dict[str, str | None]
    # Feed entries waiting for their sequence numbers.
    pending_feed: list[PendingFeedEntry]

    def reset(self) -> None:
        super().reset()
        self.decided = {}
        self.decided_before = None
        self.contacts_waiting = None
        self.versions_in_force = {}
        self.pending_feed = []
