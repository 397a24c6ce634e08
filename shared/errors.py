"""Domain exceptions: what a request or an event did wrong, in the domain's words, with no HTTP in them.

Each service declares its own small exceptions beside the code that raises them, as subclasses of
one of four kinds. The HTTP layer maps the kind to a status (`shared.problems`: 404, 403, 409, 422)
and the class's `code` to the problem type; a consumer dead-letters an event that raises one, with
the code and detail as the reason (`shared.consumer`).
"""

from typing import Any, ClassVar


class DomainError(Exception):
    """A request or event that breaks a rule of the domain; `code` names the rule."""

    code: ClassVar[str] = "domain-error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # Further members of the problem document (e.g. `allowed` transitions, field `errors`).
        self.extra = extra


class NotFound(DomainError):
    """Nothing of that id exists for the caller: also what one hears of a thing it has no part in."""

    code = "not-found"


class NotAllowed(DomainError):
    """The caller knows of the thing but may not do this to it."""

    code = "forbidden"


class Conflict(DomainError):
    """The thing's present state does not allow this (an illegal transition, a decision already made)."""

    code = "conflict"


class Gone(DomainError):
    """The thing existed and the caller had a part in it, but it was erased for good (消去)."""

    code = "gone"


class Invalid(DomainError):
    """Well-formed input that the domain refuses (an area not in the municipality, a missing reason)."""

    code = "validation-error"


class InvalidFields(Invalid):
    """Input fields that are well-formed but wrong, each with its message and Japanese label."""

    def __init__(self, errors: list[tuple[str, str]], labels: dict[str, str]) -> None:
        listed = [
            {
                "field": field,
                "label": labels.get(field.rsplit(".", 1)[-1], field),
                "message": message,
                "type": "value_error",
            }
            for field, message in errors
        ]
        super().__init__(f"{len(listed)} field(s) are invalid", errors=listed)


class MissingScope(NotAllowed):
    """The credential lacks every scope the action needs."""

    code = "forbidden"
