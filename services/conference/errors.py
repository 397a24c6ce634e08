"""What a request or an event asked of conference that its rules refuse, in the domain's words."""

from shared.errors import Conflict, Invalid, NotAllowed, NotFound


class MeetingNotFound(NotFound):
    """No such meeting; also what an agency with no part in a case meeting hears, so the two look alike."""

    code = "meeting-not-found"

    def __init__(self, meeting_id: str) -> None:
        super().__init__(f"no meeting {meeting_id}")


class NotAPromotionMeeting(NotFound):
    """An agenda asked of a case meeting: only a 推進会議 has one."""

    code = "not-a-promotion-meeting"

    def __init__(self) -> None:
        super().__init__("agendas belong to 推進会議")


class CaseNotFound(NotFound):
    """A case this service does not follow, of another municipality, or that the caller has no part in:
    the three look alike."""

    code = "case-not-found"

    def __init__(self, case_id: str, municipality_code: str | None = None) -> None:
        super().__init__(f"no case {case_id}" + (f" in municipality {municipality_code}" if municipality_code else ""))


class NotTheOrganiser(NotAllowed):
    """Only the lead (推進員) of the meeting's municipality, or an operator, runs a meeting."""

    code = "not-the-organiser"

    def __init__(self) -> None:
        super().__init__("the lead (推進員) or an operator runs the meeting")


class NotTheLead(NotAllowed):
    """Only the lead (推進員) of the municipality, or an operator, convenes its 推進会議."""

    code = "not-the-lead"

    def __init__(self) -> None:
        super().__init__("the lead (推進員) or an operator convenes the 推進会議")


class NotYourCalendar(NotAllowed):
    """An agency reads only its own calendar feed (operators read any)."""

    code = "not-your-calendar"

    def __init__(self) -> None:
        super().__init__("an agency reads only its own calendar")


class MeetingNotScheduled(Conflict):
    """A change to a meeting that is already held or cancelled."""

    code = "meeting-not-scheduled"


class MeetingNotHeld(Conflict):
    """A decision on a meeting that was cancelled or never held: decisions belong to a held meeting's record."""

    code = "meeting-not-held"

    def __init__(self, status: str) -> None:
        super().__init__(f"a {status} meeting records no decision; record its attendance first")


class DecisionNotFound(NotFound):
    """A correction of a decision that this meeting did not record."""

    code = "decision-not-found"

    def __init__(self, decision_id: int) -> None:
        super().__init__(f"this meeting recorded no decision {decision_id}")


class AgendaNotRecorded(NotFound):
    """A 推進会議 held before agendas were frozen: rebuilding it now would not be the agenda it had."""

    code = "agenda-not-recorded"

    def __init__(self) -> None:
        super().__init__("this 推進会議 was held without a recorded agenda")


class UnknownMunicipality(Invalid):
    """A municipality with no directory (and so no conference configuration) here."""

    code = "unknown-municipality"

    def __init__(self, municipality_code: str) -> None:
        super().__init__(f"no directory for municipality {municipality_code}")


class CaseRequired(Invalid):
    """A 推進会議 decision that names no case."""

    code = "case-required"

    def __init__(self) -> None:
        super().__init__("a 推進会議 decision names its case_id")


class WrongCase(Invalid):
    """A case meeting's decision about another case than the meeting's."""

    code = "wrong-case"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"this case meeting is about case {case_id}")


class NotOnRoster(Invalid):
    """A 支援会議 invitee (or its organiser) that is not a current member of the municipality's roster."""

    code = "not-on-roster"

    def __init__(self, agencies: list[str], municipality_code: str) -> None:
        super().__init__(
            f"not current members of the 支援会議 of {municipality_code}: {', '.join(agencies)} "
            "(社会福祉法第106条の6: only its members may be invited)",
            agencies=agencies,
        )


class ConsentRequired(Conflict):
    """A 重層的支援会議 or 支援決定 for a case with no live 本人同意: only a 支援会議 may discuss it."""

    code = "consent-required"

    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id} has no live 本人同意: a 重層的支援会議 shares with consent; hold a 支援会議 instead"
        )


class DecisionNotOfThisKind(Invalid):
    """A decision type this kind of meeting does not take (a 支援決定 outside a 重層的支援会議, say)."""

    code = "decision-not-of-this-meeting"

    def __init__(self, decision_type: str, meeting_kind: str, allowed: list[str]) -> None:
        super().__init__(
            f"a {meeting_kind} does not record a {decision_type} decision (it records: {', '.join(allowed)})",
            allowed=allowed,
        )


class DecisionIncomplete(Invalid):
    """A decision missing what its type needs: a 終結 its reason, a plan or 見守り its next review date."""

    code = "decision-incomplete"


class PlanNotFound(NotFound):
    """A 支援プラン version the case does not have (or, for a 支援決定 naming none, no draft to approve)."""

    code = "plan-not-found"

    def __init__(self, case_id: str, version: int | None) -> None:
        which = f"version {version}" if version is not None else "drafted version to approve"
        super().__init__(f"case {case_id} has no 支援プラン {which}")


class PlanNotForThisCase(Conflict):
    """A 支援プラン for a case that is not tier 2/3, or whose coordination has ended (終結, 転居)."""

    code = "plan-not-for-this-case"


class PlanReasonRequired(Invalid):
    """A revision (version 2 on) that does not say why it was made."""

    code = "plan-reason-required"

    def __init__(self) -> None:
        super().__init__("a revised 支援プラン states its reason")


class NotEngaged(Invalid):
    """A plan giving a role, or the 主担当, to an agency that is neither the case's lead nor engaged on it."""

    code = "not-engaged"

    def __init__(self, agencies: list[str]) -> None:
        super().__init__(f"not the lead of the case nor engaged on it: {', '.join(agencies)}", agencies=agencies)


class PlanNotApproved(Conflict):
    """A monitoring of a plan version not in force, or a 支援決定 approving a superseded one."""

    code = "plan-not-approved"


class NotOnThePlan(NotAllowed):
    """Only the plan's 主担当, the case's lead or an engaged agency records its monitoring."""

    code = "not-on-the-plan"

    def __init__(self) -> None:
        super().__init__("the 主担当, the lead or an engaged agency records the plan's monitoring")
