"""What a request to intake did wrong, in the domain's words: each maps to one problem type by its `code`."""

from shared.errors import Conflict, Gone, NotAllowed, NotFound


class CaseNotFound(NotFound):
    """A case that does not exist: also what an agency hears of a case it has no part in, so that nobody
    learns a household is known to the network."""

    code = "case-not-found"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"no case {case_id}")
        self.case_id = case_id


class ReferralCompleted(NotAllowed):
    """The agency's referral on the case is completed: it may read the history it took part in, nothing more."""

    code = "referral-completed"


class NotTheSubmitter(NotAllowed):
    """Consent is recorded by the agency that submitted the case (and revoked by it or an operator)."""

    code = "not-the-submitter"


class PersonalDetailsRefused(NotAllowed):
    """The agency has a part in the case but no legal basis to read its members' personal details."""

    code = "personal-details-refused"


class ConsentNotFound(NotFound):
    """No consent of that id on the case."""

    code = "consent-not-found"


class ConsentAlreadyRevoked(Conflict):
    """A consent is revoked once; its revocation is already published."""

    code = "consent-already-revoked"


class HouseholdMatchNotFound(NotFound):
    """No possible-same-household item of that id that the caller decides."""

    code = "household-match-not-found"


class HouseholdMatchDecided(Conflict):
    """The possible-same-household item was already linked or dismissed."""

    code = "household-match-decided"


class MunicipalityNotAdministered(NotFound):
    """A municipality this deployment does not serve, or whose administration the credential lacks."""

    code = "municipality-not-found"


class AgencyNotInDirectory(NotFound):
    """Only an agency of the municipality's directory can sit on its 支援会議."""

    code = "agency-not-found"


class RosterEntryNotFound(NotFound):
    """The agency is not on the municipality's 支援会議 roster."""

    code = "roster-entry-not-found"


class NotTheLead(NotAllowed):
    """A case is transferred (転居), and its hand-off summary printed, by the municipality's lead coordinator
    (協働の中核) or an operator."""

    code = "not-the-lead"


class CaseAlreadyTransferred(Conflict):
    """The household already moved away from this case: it stays readable, and is transferred once."""

    code = "case-already-transferred"


class CaseNotTransferredAway(Conflict):
    """A hand-off summary is for a household that moved outside this deployment; this case did not."""

    code = "case-not-transferred-away"


class UseAlreadyRestricted(Conflict):
    """A 利用停止 is already in effect on the case: a second request is the same stop."""

    code = "use-already-restricted"


class UseNotRestricted(Conflict):
    """No 利用停止 is in effect on the case to lift."""

    code = "use-not-restricted"


class CaseErased(Gone):
    """The case's personal details were erased (retention or a 消去 request): nothing of them is left."""

    code = "case-erased"


class ErasureNotAllowed(Conflict):
    """A 消去 ahead of the retention period needs the case ended (終結), or a ground the law gives for it."""

    code = "erasure-not-allowed"
