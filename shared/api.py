"""FastAPI dependencies every service's HTTP API uses: the runtime and the authenticated agency."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import Principal, Scope, authenticate
from shared.problems import Problem
from shared.runtime import Runtime

# Declared for OpenAPI (so clients and schemathesis know the scheme); verification is ours.
bearer_scheme = HTTPBearer(
    auto_error=False, description="Access token from intake's POST /v1/token (client credentials)"
)


async def get_runtime(request: Request) -> Runtime:
    """The running service's runtime (a coroutine, so that FastAPI does not hand it to a worker thread)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def current_principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> Principal:
    """The agency behind the request's bearer token, or a 401 problem."""
    return await authenticate(request, request.app.state.verifier)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_any(principal: Principal, *scopes: Scope) -> None:
    """A 403 problem unless the credential has at least one of `scopes`."""
    if not any(principal.has(scope) for scope in scopes):
        names = " or ".join(f"'{scope.value}'" for scope in scopes)
        raise Problem(403, "forbidden", f"this credential lacks the {names} scope")


def require_municipality(principal: Principal, municipality_code: str, *, what: str = "resource") -> None:
    """A 404 problem unless the credential serves `municipality_code`: another tenant's data does not exist here."""
    if not principal.serves(municipality_code):
        raise Problem(404, f"{what}-not-found", f"no {what} here for municipality {municipality_code}")
