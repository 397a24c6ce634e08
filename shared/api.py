"""The HTTP edge every service shares: the runtime, the service's typed context, the authenticated
agency, and running a unit of work off the event loop."""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from shared import db
from shared.auth import Principal
from shared.bearer import authenticate
from shared.runtime import Runtime

T = TypeVar("T")
C = TypeVar("C")

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


def context_of(kind: type[C]) -> Callable[[Request], Any]:
    """A dependency that gives the service's context (built once in its lifespan), typed as `kind`."""

    async def dependency(request: Request) -> C:
        runtime: Runtime = request.app.state.runtime
        return runtime.context_as(kind)

    return dependency


async def in_transaction(runtime: Runtime, work: Callable[[Any], T], *, stages_events: bool = False) -> T:
    """Run `work` in one unit of work in a worker thread; wake the relay if it staged events.

    The unit of work is of the service's type (`ServiceDefinition.unit_of_work`): `work` takes that
    type, or any base of it (most endpoints need only a `Session`).
    """

    def run() -> T:
        with db.transaction(runtime.engine, runtime.unit_of_work) as unit:
            return work(unit)

    result = await anyio.to_thread.run_sync(run)
    if stages_events:
        runtime.notify_outbox()
    return result


async def in_snapshot(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """Run `work` in a worker thread over one consistent, read-only view of the database (`db.snapshot`).

    For reports: read in several queries under READ COMMITTED, a report could count a case in one
    table and miss it in another.
    """

    def run() -> T:
        with db.snapshot(runtime.engine) as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)
