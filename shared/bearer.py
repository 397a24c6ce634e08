"""Bearer tokens over HTTP: reading one from a request, and the 401 problem (with its challenge) when it fails."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.auth import InvalidToken, Principal, TokenVerifier
from shared.problems import Problem, problem_response


class AuthProblem(Problem):
    """A 401 problem whose response also carries `WWW-Authenticate` (plain `Problem` has no headers)."""

    def __init__(self, detail: str, *, challenge: str = "Bearer") -> None:
        super().__init__(401, "unauthenticated", detail)
        self.headers = {"WWW-Authenticate": challenge}


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header, or None when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # The auth scheme is case-insensitive (RFC 9110 §11.1).
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request, verifier: TokenVerifier) -> Principal:
    """The principal of the request's bearer token; raises AuthProblem (401) when missing or invalid."""
    token = bearer_token(request)
    if token is None:
        raise AuthProblem("a bearer token is required")
    try:
        return verifier.verify(token)
    except InvalidToken as exc:
        raise AuthProblem(str(exc), challenge='Bearer error="invalid_token"') from exc


def install_auth(app: FastAPI) -> None:
    """Send AuthProblem as problem+json with its `WWW-Authenticate` header (after `problems.install`)."""

    async def on_auth_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthProblem)
        response = problem_response(request, status=exc.status, slug=exc.slug, detail=exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    # Starlette picks the handler of the most specific class, so this one wins over Problem's.
    app.add_exception_handler(AuthProblem, on_auth_problem)
