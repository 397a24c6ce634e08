"""What intake needs beyond its database, built once when it starts (`app.py`) and given to each request."""

from dataclasses import dataclass, field
from datetime import datetime

from services.intake.privacy import Vault
from shared.auth import TokenIssuer
from shared.directory import Directory


@dataclass(frozen=True)
class IntakeContext:
    """The municipalities served (their directories in force), the keys of personal details, and the token
    issuer.

    `directories` changes while the service runs: each DirectoryPublished replaces a municipality's entry
    (services/intake/directories.py), and `published` holds when the one in force was published.
    """

    directories: dict[str, Directory]
    vault: Vault
    issuer: TokenIssuer
    published: dict[str, datetime] = field(default_factory=dict)

    def keep(self, directory: Directory, published_at: datetime) -> bool:
        """Put `directory` in force unless a later one already is; True if it now is."""
        code = directory.municipality.code
        current = self.published.get(code)
        if current is not None and current >= published_at:
            return False
        self.directories[code] = directory
        self.published[code] = published_at
        return True
