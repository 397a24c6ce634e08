"""What intake needs beyond its database, built once when it starts (`app.py`) and given to each request."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.intake.models import DirectoryInForce
from services.intake.privacy import Vault
from shared.auth import TokenIssuer
from shared.directory import Directory
from shared.directory_in_force import DirectoriesInForce
from shared.privacy_policy import DEFAULT_POLICY, IntakePolicy, policy_of


@dataclass(frozen=True)
class IntakeContext:
    """The municipalities served (their directories in force), the keys of personal details, and the token
    issuer.

    `directories` changes while the service runs: each version the router publishes replaces a
    municipality's entry (`in_force`, shared/directory_in_force.py).
    """

    directories: dict[str, Directory]
    vault: Vault
    issuer: TokenIssuer
    # Each municipality's retention and request deadlines (the `intake:` section of its directory).
    policies: dict[str, IntakePolicy] = field(default_factory=dict)
    in_force: DirectoriesInForce = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_force", DirectoriesInForce(DirectoryInForce, self._put_in_force))

    def _put_in_force(self, directory: Directory, body: Mapping[str, Any]) -> None:
        self.directories[directory.municipality.code] = directory
        self.policies[directory.municipality.code] = policy_of(body)

    def policy(self, municipality_code: str) -> IntakePolicy:
        """The municipality's policy (the defaults until its directory says otherwise)."""
        return self.policies.get(municipality_code, DEFAULT_POLICY)
