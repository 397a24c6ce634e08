"""Client secrets, signed access tokens, key rotation, and the 401/403 problems of shared.auth and shared.bearer."""

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI, Request

from shared import problems
from shared.auth import (
    LEEWAY_S,
    VERIFIED_TOKENS_KEPT,
    AuthConfigError,
    InvalidToken,
    Principal,
    Scope,
    TokenIssuer,
    TokenVerifier,
    generate_signing_key,
    hash_secret,
    key_id,
    load_issuer,
    load_verifier,
    new_client_secret,
    require,
    verify_secret,
)
from shared.bearer import authenticate, install_auth

AGENCY = "agency-131016-0001"
_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    """One Ed25519 key pair (private PEM, public PEM) for the module."""
    return generate_signing_key()


@pytest.fixture(scope="module")
def issuer(keys: tuple[str, str]) -> TokenIssuer:
    return load_issuer(keys[0])


@pytest.fixture(scope="module")
def verifier(keys: tuple[str, str]) -> TokenVerifier:
    return load_verifier([keys[1]])


def reason(verifier: TokenVerifier, token: str) -> str:
    """The reason `verifier` gives for refusing `token`."""
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    return str(refused.value)


def sign(private_pem: str, claims: dict[str, Any], kid: str) -> str:
    """A token with arbitrary claims, signed like the issuer signs."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})  # type: ignore[arg-type]


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "marugoto",
        "sub": AGENCY,
        "aud": "marugoto",
        "scope": "submit",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "00000000-0000-4000-8000-000000000000",
        "municipalities": ["242080"],
    }
    return claims | overrides


def test_secret_hash_round_trip_and_wrong_secret_is_rejected() -> None:
    secret = new_client_secret()
    stored = hash_secret(secret)
    assert stored.startswith("scrypt$")
    assert secret not in stored
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret(new_client_secret(), stored)


def test_client_secrets_are_long_and_unique() -> None:
    secrets = {new_client_secret() for _ in range(50)}
    assert len(secrets) == 50
    # 32 random bytes in URL-safe base64 are 43 characters.
    assert all(len(secret) >= 43 and set(secret) <= set(_URLSAFE) for secret in secrets)


def test_two_hashes_of_one_secret_differ_by_salt() -> None:
    secret = new_client_secret()
    first, second = hash_secret(secret), hash_secret(secret)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_secret(secret, first) and verify_secret(secret, second)


def test_a_stored_value_that_is_not_a_hash_is_an_error_not_a_mismatch() -> None:
    with pytest.raises(ValueError, match="scrypt"):
        verify_secret("anything", "plaintext-secret")


def test_issue_then_verify_round_trip_with_scopes(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, expires_in = issuer.issue(AGENCY, [Scope.submit, Scope.read_own])
    principal = verifier.verify(token)
    assert expires_in == 900
    assert principal.agency_id == AGENCY
    assert principal.scopes == {Scope.submit, Scope.read_own}
    assert principal.has(Scope.submit)
    assert not principal.has(Scope.coordinator)
    assert principal.token_id


def test_issued_claims_and_header(issuer: TokenIssuer, keys: tuple[str, str]) -> None:
    now = datetime(2030, 4, 1, 9, 0, tzinfo=UTC)
    token, _ = issuer.issue(AGENCY, [Scope.coordinator, Scope.submit], now=now)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key_id(keys[1])
    assert claims["iss"] == "marugoto" and claims["aud"] == "marugoto" and claims["sub"] == AGENCY
    assert set(claims["scope"].split(" ")) == {"coordinator", "submit"}
    assert claims["iat"] == claims["nbf"] == int(now.timestamp())
    assert claims["exp"] == int(now.timestamp()) + 900
    other, _ = issuer.issue(AGENCY, [Scope.submit], now=now)
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]


def test_expired_token_is_rejected(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.submit], now=datetime.now(UTC) - timedelta(hours=1))
    assert reason(verifier, token) == "token expired"


def test_clock_skew_within_leeway_is_tolerated(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    just_expired, _ = issuer.issue(AGENCY, [Scope.submit], now=datetime.now(UTC) - timedelta(seconds=900 + 10))
    assert verifier.verify(just_expired).agency_id == AGENCY
    long_expired, _ = issuer.issue(AGENCY, [Scope.submit], now=datetime.now(UTC) - timedelta(seconds=900 + 60))
    assert reason(verifier, long_expired) == "token expired"


def test_a_verified_token_is_remembered_and_refused_once_it_expires(
    issuer: TokenIssuer, keys: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [datetime.now(UTC).timestamp()]
    verifier = TokenVerifier({key_id(keys[1]): keys[1]}, clock=lambda: now[0])
    checks: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checks.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token, ttl = issuer.issue(AGENCY, [Scope.submit])
    first = verifier.verify(token)
    assert verifier.verify(token) == first and len(checks) == 1  # the signature was checked once
    now[0] += ttl + LEEWAY_S + 1
    assert reason(verifier, token) == "token expired"
    assert token not in verifier._verified and len(checks) == 1  # forgotten: the next use is checked afresh
    refused = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert reason(verifier, refused) == "bad signature"
    assert reason(verifier, refused) == "bad signature" and len(checks) == 3  # a refusal is not remembered


def test_the_remembered_tokens_are_bounded(issuer: TokenIssuer, keys: tuple[str, str]) -> None:
    verifier = TokenVerifier({key_id(keys[1]): keys[1]})
    tokens = [issuer.issue(f"agency-{i}", [Scope.submit])[0] for i in range(VERIFIED_TOKENS_KEPT + 10)]
    assert {verifier.verify(t).agency_id for t in tokens} == {f"agency-{i}" for i in range(len(tokens))}
    assert len(verifier._verified) == VERIFIED_TOKENS_KEPT
    assert tokens[0] not in verifier._verified and tokens[-1] in verifier._verified


def test_token_from_the_future_is_not_yet_valid(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.submit], now=datetime.now(UTC) + timedelta(minutes=5))
    assert reason(verifier, token) == "token not yet valid"


def test_token_signed_by_another_key_is_rejected(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    other_private, _ = generate_signing_key()
    # Same kid as the trusted key, so only the signature can tell them apart.
    forged, _ = TokenIssuer(other_private, kid=key_id(keys[1])).issue(AGENCY, [Scope.admin])
    assert reason(verifier, forged) == "bad signature"


def test_rotation_old_and_new_keys_both_accepted_until_old_is_dropped() -> None:
    old_private, old_public = generate_signing_key()
    new_private, new_public = generate_signing_key()
    old_token, _ = load_issuer(old_private).issue(AGENCY, [Scope.submit])
    new_token, _ = load_issuer(new_private).issue(AGENCY, [Scope.submit])

    during_rotation = load_verifier([old_public, new_public])
    assert during_rotation.verify(old_token).agency_id == AGENCY
    assert during_rotation.verify(new_token).agency_id == AGENCY

    after_rotation = load_verifier([new_public])
    assert after_rotation.verify(new_token).agency_id == AGENCY
    assert reason(after_rotation, old_token) == "unknown signing key"


def test_tampered_payload_is_rejected(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.submit])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "submit admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert reason(verifier, f"{header}.{forged_payload}.{signature}") == "bad signature"


def test_unknown_kid_is_rejected(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(keys[0], kid="not-a-known-kid").issue(AGENCY, [Scope.submit])
    assert reason(verifier, token) == "unknown signing key"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30"])
def test_malformed_token_is_rejected(verifier: TokenVerifier, token: str) -> None:
    assert reason(verifier, token) in {"malformed token", "not an access token", "unknown signing key"}


def test_wrong_issuer_and_audience_are_rejected(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    kid = key_id(keys[1])
    other_issuer, _ = TokenIssuer(keys[0], kid=kid, issuer="elsewhere").issue(AGENCY, [Scope.submit])
    assert reason(verifier, other_issuer) == "wrong issuer"
    assert reason(verifier, sign(keys[0], valid_claims(aud="another-system"), kid)) == "wrong audience"
    assert verifier.verify(sign(keys[0], valid_claims(), kid)).agency_id == AGENCY


def test_unknown_scope_name_is_rejected(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    token = sign(keys[0], valid_claims(scope="submit superuser"), key_id(keys[1]))
    assert reason(verifier, token) == "unknown scope 'superuser'"


def test_missing_claim_is_rejected(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    claims = valid_claims()
    del claims["jti"]
    assert reason(verifier, sign(keys[0], claims, key_id(keys[1]))) == "missing claim 'jti'"


def test_a_jwt_of_another_type_is_not_an_access_token(keys: tuple[str, str], verifier: TokenVerifier) -> None:
    key = serialization.load_pem_private_key(keys[0].encode(), password=None)
    id_token = jwt.encode(valid_claims(), key, algorithm="EdDSA", headers={"kid": key_id(keys[1])})  # type: ignore[arg-type]
    assert reason(verifier, id_token) == "not an access token"


def test_kid_is_a_stable_fingerprint_of_the_public_key(keys: tuple[str, str]) -> None:
    kid = key_id(keys[1])
    assert kid == key_id(keys[1])
    assert re.fullmatch(r"[0-9a-f]{16}", kid)
    assert load_issuer(keys[0]).kid == kid
    assert key_id(generate_signing_key()[1]) != kid


def test_unreadable_pem_is_a_config_error(keys: tuple[str, str]) -> None:
    with pytest.raises(AuthConfigError):
        load_issuer("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(AuthConfigError):
        load_verifier(["not a pem"])
    with pytest.raises(AuthConfigError):
        # A public key where the private one belongs.
        load_issuer(keys[1])
    with pytest.raises(AuthConfigError):
        load_verifier([])


def make_app(verifier: TokenVerifier) -> FastAPI:
    """A tiny service that authenticates every request the way the real ones will."""
    app = FastAPI()
    problems.install(app)
    install_auth(app)
    app.state.token_verifier = verifier

    async def principal(request: Request) -> Principal:
        return await authenticate(request, request.app.state.token_verifier)

    @app.get("/me")
    async def me(who: Annotated[Principal, Depends(principal)]) -> dict[str, str]:
        return {"agency_id": who.agency_id}

    @app.get("/feed")
    async def feed(who: Annotated[Principal, Depends(principal)]) -> dict[str, str]:
        require(who, Scope.coordinator)
        return {"agency_id": who.agency_id}

    return app


@pytest.fixture
async def client(verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_no_authorization_header_is_401_problem_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["type"].endswith("/unauthenticated")
    assert body["status"] == 401
    assert body["instance"] == "/me"


async def test_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": "Basic YWdlbmN5OnNlY3JldA=="})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_token_is_401_problem_with_reason(client: httpx.AsyncClient, keys: tuple[str, str]) -> None:
    other_private, _ = generate_signing_key()
    forged, _ = TokenIssuer(other_private, kid=key_id(keys[1])).issue(AGENCY, [Scope.submit])
    response = await client.get("/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"] == "bad signature"


async def test_good_token_is_200_with_the_agency(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.submit])
    response = await client.get("/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"agency_id": AGENCY}


async def test_missing_scope_is_403_problem(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.submit])
    response = await client.get("/feed", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/forbidden")
    assert body["detail"] == "this credential lacks the 'coordinator' scope"


async def test_granted_scope_passes_require(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.coordinator])
    response = await client.get("/feed", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"agency_id": AGENCY}


def test_a_token_names_the_municipalities_it_serves(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(AGENCY, [Scope.operator], municipalities=["242080", "131016"])
    principal = verifier.verify(token)
    assert principal.municipalities == {"242080", "131016"}
    assert principal.serves("242080") and not principal.serves("011002")
    platform, _ = issuer.issue("vendor", [Scope.operator, Scope.platform])
    assert verifier.verify(platform).serves("011002")


def test_a_token_without_or_with_a_malformed_municipalities_claim_is_refused(
    keys: tuple[str, str], verifier: TokenVerifier
) -> None:
    kid = key_id(keys[1])
    claims = valid_claims()
    del claims["municipalities"]
    assert reason(verifier, sign(keys[0], claims, kid)) == "missing claim 'municipalities'"
    assert (
        reason(verifier, sign(keys[0], valid_claims(municipalities="242080"), kid)) == "malformed municipalities claim"
    )
