"""What a request asked of metrics that its rules refuse, in the domain's words."""

from collections.abc import Iterable

from shared.errors import Invalid


class NotAManualIndicator(Invalid):
    """A value entered for an indicator that is counted from events (or is no indicator at all)."""

    code = "not-a-manual-indicator"

    def __init__(self, indicator: str, manual_ids: Iterable[str]) -> None:
        super().__init__(f"{indicator} is computed from events; enter one of {sorted(manual_ids)}")
