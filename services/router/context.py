"""What the router needs besides a session, built once when it starts: the municipalities'
configurations and the clock its deadlines are counted on."""

from dataclasses import dataclass

from services.router.deadlines import Clock
from services.router.directories import ConfigCache


@dataclass(frozen=True)
class RouterContext:
    """The router's context: configurations by version, and the clock of referral deadlines."""

    configs: ConfigCache
    clock: Clock
