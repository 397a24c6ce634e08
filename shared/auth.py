"""Credentials of partner agencies and staff: client secrets, signed access tokens, and their checks.

Intake holds the Ed25519 private key and issues tokens; every service holds only public keys and
verifies tokens locally, so no request needs a call to intake.
"""

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import MissingScope, NotFound

ALGORITHM = "EdDSA"
AUDIENCE = "marugoto"
DEFAULT_ISSUER = "marugoto"
# RFC 9068: a distinct type keeps any other JWT signed with the same key from passing as an access token.
TOKEN_TYPE = "at+jwt"
LEEWAY_S = 30
# The municipalities (tenants) a credential serves, as a list of 全国地方公共団体コード.
MUNICIPALITIES_CLAIM = "municipalities"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", MUNICIPALITIES_CLAIM]
# Tokens a verifier remembers having verified (about 0.4 KB each); beyond it the oldest is forgotten.
VERIFIED_TOKENS_KEPT = 4096

# Secrets are 256 random bits, so scrypt guards against a leaked table, not weak passwords; these are
# the RFC 7914 interactive parameters (16 MiB), cheap enough to run on every token request.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_BYTES = 16
SCRYPT_HASH_BYTES = 32


class Scope(StrEnum):
    """What a credential may do."""

    submit = "submit"  # submit consultations
    read_own = "read_own"  # read the cases it submitted
    coordinator = "coordinator"  # read the coordinator feed
    operator = "operator"
    admin = "admin"
    # Reaches every municipality of the deployment (a vendor's or prefecture's platform team); every
    # other credential reaches only the municipalities it names.
    platform = "platform"


class AuthConfigError(Exception):
    """A signing or verifying key in the configuration cannot be used."""


class InvalidToken(Exception):
    """An access token that must not be accepted; the message is a short reason."""


@dataclass(frozen=True)
class Principal:
    """The agency a verified token speaks for, and what it may do."""

    agency_id: str
    scopes: frozenset[Scope]
    token_id: str
    municipalities: frozenset[str] = frozenset()

    def has(self, scope: Scope) -> bool:
        """True when this credential carries `scope`."""
        return scope in self.scopes

    def serves(self, municipality_code: str) -> bool:
        """True when this credential may read or write anything of `municipality_code` (its tenant)."""
        return Scope.platform in self.scopes or municipality_code in self.municipalities


def new_client_secret() -> str:
    """A new random client secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """A salted scrypt hash of `secret`, as one string `scrypt$n$r$p$salt$hash`."""
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_HASH_BYTES
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64encode(salt)}${_b64encode(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when `secret` matches the `stored` hash; raises ValueError when `stored` is not one of ours."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        salt, expected = _b64decode(salt_b64), _b64decode(hash_b64)
        # Parameters come from the stored string so they can be raised later without breaking old hashes;
        # hashlib's default maxmem (32 MiB) still bounds what a corrupted row can cost.
        digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except ValueError as exc:
        # A row that isn't a hash of ours is a data error, not a wrong secret: don't hide it.
        raise ValueError("stored secret hash is not in the scrypt$n$r$p$salt$hash format") from exc
    return hmac.compare_digest(digest, expected)


def generate_signing_key() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return private_pem, _public_pem(private.public_key())


def _public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _load_private_key(private_pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise AuthConfigError("the token signing key is not a readable unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuthConfigError(f"the token signing key must be Ed25519, not {type(key).__name__}")
    return key


def _load_public_key(public_pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise AuthConfigError("a token verifying key is not a readable PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuthConfigError(f"a token verifying key must be Ed25519, not {type(key).__name__}")
    return key


def _fingerprint(key: Ed25519PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def key_id(public_pem: str) -> str:
    """The key id (`kid`) of a public key: the first 16 hex digits of the SHA-256 of its DER form."""
    return _fingerprint(_load_public_key(public_pem))


class TokenIssuer:
    """Signs access tokens; lives only where the private key is (intake)."""

    def __init__(self, private_pem: str, kid: str, issuer: str = DEFAULT_ISSUER, ttl_s: int = 900) -> None:
        if not kid:
            raise AuthConfigError("a signing key needs a key id")
        if ttl_s <= 0:
            raise AuthConfigError("the token lifetime must be positive")
        self._key = _load_private_key(private_pem)
        self.kid = kid
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(
        self,
        agency_id: str,
        scopes: Iterable[Scope],
        now: datetime | None = None,
        *,
        municipalities: Iterable[str] = (),
    ) -> tuple[str, int]:
        """A signed access token for `agency_id` with `scopes` in `municipalities`, and its lifetime in seconds."""
        issued_at = now if now is not None else datetime.now(UTC)
        if issued_at.tzinfo is None:
            raise ValueError("`now` must be timezone-aware")
        iat = int(issued_at.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": agency_id,
            "aud": AUDIENCE,
            "scope": " ".join(sorted({Scope(scope) for scope in scopes})),
            MUNICIPALITIES_CLAIM: sorted(set(municipalities)),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl_s,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": TOKEN_TYPE})
        return token, self.ttl_s


class TokenVerifier:
    """Checks access tokens against the public keys it knows, by key id; needs no call to intake."""

    def __init__(
        self, public_keys: Mapping[str, str], issuer: str = DEFAULT_ISSUER, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not public_keys:
            # A verifier without keys would reject every request; fail at start-up instead.
            raise AuthConfigError("no token verifying keys are configured")
        self._keys = {kid: _load_public_key(pem) for kid, pem in public_keys.items()}
        self.issuer = issuer
        self._clock = clock
        # token -> (its principal, the time after which it is expired even with the leeway)
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    @property
    def key_ids(self) -> frozenset[str]:
        """The key ids this verifier accepts."""
        return frozenset(self._keys)

    def verify(self, token: str) -> Principal:
        """The principal of a valid `token`; raises InvalidToken with a short reason otherwise.

        A client sends the same token with every request for its lifetime, and checking its signature
        was most of the cost of authenticating one; a token once verified is remembered, by its exact
        text, until it expires. A refused token is checked afresh each time.
        """
        with self._lock:
            held = self._verified.get(token)
        if held is not None:
            principal, expires_at = held
            if self._clock() < expires_at:
                return principal
            with self._lock:
                self._verified.pop(token, None)
            raise InvalidToken("token expired")
        principal, expires_at = self._verify(token)
        with self._lock:
            self._verified[token] = (principal, expires_at)
            if len(self._verified) > VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown signing key")
        claims = self._decode(token, key)
        scope_claim = claims["scope"]
        if not isinstance(scope_claim, str):
            raise InvalidToken("malformed scope claim")
        names = scope_claim.split()
        # A scope this code doesn't know means the issuer is newer than us: refuse rather than guess.
        if unknown := [name for name in names if name not in {scope.value for scope in Scope}]:
            raise InvalidToken(f"unknown scope '{unknown[0]}'")
        scopes = frozenset(Scope(name) for name in names)
        codes = claims[MUNICIPALITIES_CLAIM]
        if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
            raise InvalidToken("malformed municipalities claim")
        principal = Principal(
            agency_id=claims["sub"], scopes=scopes, token_id=claims["jti"], municipalities=frozenset(codes)
        )
        return principal, claims["exp"] + LEEWAY_S  # PyJWT refuses it from then on

    def _decode(self, token: str, key: Ed25519PublicKey) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                # Pinned, never taken from the header: no algorithm confusion.
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("bad signature") from exc
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("token not yet valid") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("wrong issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("wrong audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim '{exc.claim}'") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc


def load_issuer(private_pem: str, issuer: str = DEFAULT_ISSUER, ttl_s: int = 900) -> TokenIssuer:
    """A token issuer for a configured private key; its kid is the fingerprint of the public half."""
    kid = _fingerprint(_load_private_key(private_pem).public_key())
    return TokenIssuer(private_pem, kid, issuer=issuer, ttl_s=ttl_s)


def load_verifier(public_keys_pem: Iterable[str], issuer: str = DEFAULT_ISSUER) -> TokenVerifier:
    """A token verifier for configured public keys (old and new during a rotation), keyed by fingerprint."""
    return TokenVerifier({key_id(pem): pem for pem in public_keys_pem}, issuer=issuer)


def require_any(principal: Principal, *scopes: Scope) -> None:
    """Raise MissingScope unless the credential has at least one of `scopes`."""
    if not any(principal.has(scope) for scope in scopes):
        names = " or ".join(f"'{scope.value}'" for scope in scopes)
        raise MissingScope(f"this credential lacks the {names} scope")


def require(principal: Principal, scope: Scope) -> None:
    """Raise MissingScope unless `principal` carries `scope`."""
    if not principal.has(scope):
        raise MissingScope(f"this credential lacks the '{scope}' scope")


class MunicipalityNotServed(NotFound):
    """A municipality the credential does not serve: another tenant's data does not exist for it."""

    code = "municipality-not-found"


def require_municipality(principal: Principal, municipality_code: str) -> None:
    """Raise MunicipalityNotServed unless the credential serves `municipality_code`."""
    if not principal.serves(municipality_code):
        raise MunicipalityNotServed(f"municipality {municipality_code} is not served here")
