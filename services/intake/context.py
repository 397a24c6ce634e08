"""What intake needs beyond its database, built once when it starts (`app.py`) and given to each request."""

from collections.abc import Mapping
from dataclasses import dataclass

from services.intake.privacy import Vault
from shared.auth import TokenIssuer
from shared.directory import Directory


@dataclass(frozen=True)
class IntakeContext:
    """The municipalities served (their directories), the keys of personal details, and the token issuer."""

    directories: Mapping[str, Directory]
    vault: Vault
    issuer: TokenIssuer
