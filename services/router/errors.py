"""What a consultation, a request or a move of a referral did wrong, in the router's words.

Each exception names its problem type (`code`). The HTTP layer answers one by its kind (404, 403,
409, 422); the consumer dead-letters a consultation that raises one, with the code and detail.
"""

from shared.consumer import PermanentEventError
from shared.directory import DirectoryError
from shared.errors import Conflict, Invalid, NotAllowed, NotFound

# Japanese labels of the directory fields a refused directory can name (as intake labels its fields).
DIRECTORY_LABELS = {"lead": "協働の中核", "general_window": "総合相談窓口", "business_hours": "開所時間"}


class UnknownMunicipality(PermanentEventError):
    """A consultation for a municipality the router has no directory for."""

    code = "unknown-municipality"


class UnroutableConsultation(PermanentEventError):
    """A consultation the rules cannot place (e.g. an area not in the municipality's tree)."""

    code = "unroutable-consultation"


class UnappliableContact(PermanentEventError):
    """A later contact whose new facts do not fit its case (e.g. issues for a member the case does not have)."""

    code = "unappliable-contact"


class NoOwner(UnroutableConsultation, Conflict):
    """A decision that would engage no agency; directory validation makes it unreachable, this is the safety net.

    A consultation that raises it is dead-lettered; an escalation asked for over HTTP is refused (409).
    """

    code = "no-owner"


class DirectoryNotFound(NotFound):
    """No directory for the municipality, or one of a municipality the caller does not serve."""

    code = "directory-not-found"

    def __init__(self, municipality_code: str) -> None:
        super().__init__(f"no directory for municipality {municipality_code}")


class InvalidDirectory(Invalid):
    """A directory body that is refused; it names the field at fault when there is one."""

    code = "invalid-directory"

    @classmethod
    def of(cls, error: DirectoryError) -> "InvalidDirectory":
        """The refusal of a directory that failed validation."""
        if error.field is None:
            return cls(str(error))
        leaf = error.field.rsplit(".", 1)[-1]
        label = DIRECTORY_LABELS.get(leaf, leaf)
        field = {"field": error.field, "label": label, "message": str(error), "type": "value_error"}
        return cls(str(error), errors=[field])


class DecisionNotFound(NotFound):
    """A case with no decision yet, or one the reader has no part in (to it the case does not exist)."""

    code = "decision-not-found"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} has no routing decision (yet)")


class CaseNotRouted(NotFound):
    """An escalation of a case with no decision yet, or of one the asker has no part in."""

    code = "case-not-routed"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} has no routing decision (yet)")


class NotYourQueue(NotAllowed):
    """A coordinator asking for another agency's referrals."""

    code = "not-your-queue"


class NotYourFeed(NotAllowed):
    """An agency asking for another agency's feed."""

    code = "not-your-feed"


class ReferralNotFound(NotFound):
    """No such referral, or one of a case the caller has no part in."""

    code = "referral-not-found"

    def __init__(self, referral_id: str) -> None:
        super().__init__(f"no referral {referral_id}")


class NotTheLead(NotAllowed):
    """Something only the case's lead (協働の中核) or an operator may do."""

    code = "not-the-lead"


class NotYourReferral(NotAllowed):
    """A move of a referral addressed to another agency."""

    code = "not-your-referral"


class NotATier1Place(NotAllowed):
    """Backup asked for by someone other than the tier-1 place on the case (指針 第二 一4, seed L2214)."""

    code = "not-a-tier1-place"


class IllegalTransition(Conflict):
    """A move the referral's present state does not allow; `allowed` lists those it does."""

    code = "illegal-transition"

    def __init__(self, status: str, to: str, allowed: frozenset[str]) -> None:
        super().__init__(f"a referral that is {status} cannot become {to}", allowed=sorted(allowed))


class LeadCannotReject(Conflict):
    """A rejection by the lead, who holds the case as its owner of last resort."""

    code = "lead-cannot-reject"


class LastOpenReferral(Conflict):
    """Closing the lead's referral while it is the case's last open one: the case would have no owner."""

    code = "last-open-referral"


class ReasonRequired(Invalid):
    """A rejection or a closing without one of the coded reasons."""

    code = "reason-required"

    def __init__(self, to: str, codes: frozenset[str]) -> None:
        field = {
            "field": "reason_code",
            "label": "理由コード",
            "message": f"one of: {', '.join(sorted(codes))}",
            "type": "value_error",
        }
        super().__init__(f"a referral becomes {to} only with a reason code", errors=[field])
