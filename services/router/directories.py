"""Each municipality's directory, rules and deadlines: stored as versions, the latest activated one in
force, each version parsed once. A decision names the version it was made under."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from services.router import rules as routing
from services.router.batch import RoutingBatch
from services.router.deadlines import RoutingDeadlines
from services.router.errors import InvalidDirectory, UnknownMunicipality
from services.router.models import DirectoryVersion, RouterOutbox
from shared import outbox
from shared.directory import Directory, DirectoryError, load_directory
from shared.events import DirectoryPublished, new_event
from shared.privacy_policy import policy_of

SOURCE = "/marugoto/router"


@dataclass(frozen=True)
class MunicipalityConfig:
    """A municipality's directory, rules and deadlines, as one directory version."""

    version: str
    directory: Directory
    rules: routing.RuleSet
    deadlines: RoutingDeadlines


def parse_config(body: Mapping[str, Any]) -> MunicipalityConfig:
    """Validate a directory body (the scenario-file shape, plus `routing:`); raises DirectoryError."""
    directory = load_directory(body)
    try:
        rules = routing.RuleSet.from_mapping(body)
        deadlines = RoutingDeadlines.model_validate(body.get("routing") or {})
        policy_of(body)  # intake's section: refused here rather than failing where intake puts it in force
    except ValueError as error:
        raise DirectoryError(str(error)) from None
    routing.check_owners(directory, rules)
    return MunicipalityConfig(version=directory.version, directory=directory, rules=rules, deadlines=deadlines)


def store_directory(session: Session, body: Mapping[str, Any], *, source: str, activate: bool) -> DirectoryVersion:
    """Record a directory version (validated); activate it if asked or if it is new, and publish it then."""
    config = parse_config(body)
    code = config.directory.municipality.code
    row = session.get(DirectoryVersion, (code, config.version))
    if row is None:
        row = DirectoryVersion(municipality_code=code, version=config.version, body=dict(body), source=source)
        session.add(row)
    elif activate:
        row.activated_at = datetime.now(UTC)
        session.add(row)
    else:
        return row
    publish(session, row, source=source)
    return row


def publish(session: Session, row: DirectoryVersion, *, source: str) -> None:
    """Tell every service that `row` is in force from now, in the transaction that put it in force.

    `published_at` is the activation time, so a consumer keeps the latest activation whatever order
    the events arrive in.
    """
    data = DirectoryPublished(version=row.version, body=dict(row.body), source=source, published_at=row.activated_at)
    event = new_event(data, source=SOURCE, subject=row.municipality_code, municipality_code=row.municipality_code)
    outbox.stage(session, RouterOutbox, event)


def replace_directory(
    session: Session, municipality_code: str, body: Mapping[str, Any], *, source: str
) -> DirectoryVersion:
    """Put `body` in force as the municipality's directory from now; raises InvalidDirectory.

    Past decisions keep the version they were made under.
    """
    try:
        row = store_directory(session, body, source=source, activate=True)
    except DirectoryError as error:
        raise InvalidDirectory.of(error) from None
    if row.municipality_code != municipality_code:
        raise InvalidDirectory(f"the body is the directory of {row.municipality_code}")
    return row


def seed_directories(session: Session, bodies: Mapping[str, Mapping[str, Any]]) -> None:
    """Record the configured files' directories; a file that changed becomes the version in force."""
    for body in bodies.values():
        store_directory(session, body, source="file", activate=False)


def active_version_id(session: Session, municipality_code: str) -> str | None:
    """The version id of the directory in force for a municipality (without reading its body)."""
    query = (
        select(DirectoryVersion.version)
        .where(DirectoryVersion.municipality_code == municipality_code)
        .order_by(col(DirectoryVersion.activated_at).desc())
    )
    return session.exec(query).first()


def active_version(session: Session, municipality_code: str) -> DirectoryVersion | None:
    """The directory version in force for a municipality."""
    query = (
        select(DirectoryVersion)
        .where(DirectoryVersion.municipality_code == municipality_code)
        .order_by(col(DirectoryVersion.activated_at).desc())
    )
    return session.exec(query).first()


def list_versions(session: Session, municipality_code: str) -> list[DirectoryVersion]:
    """Every version of a municipality's directory, the one in force first."""
    query = (
        select(DirectoryVersion)
        .where(DirectoryVersion.municipality_code == municipality_code)
        .order_by(col(DirectoryVersion.activated_at).desc())
    )
    return list(session.exec(query).all())


class ConfigCache:
    """Parsed configurations by version (a version's content never changes)."""

    def __init__(self) -> None:
        self._by_version: dict[tuple[str, str], MunicipalityConfig] = {}

    def active(self, batch: RoutingBatch, municipality_code: str) -> MunicipalityConfig:
        """The configuration in force, or UnknownMunicipality.

        The version in force is read once per transaction (a batch of consultations is decided with
        one directory), and a version's body is parsed once per process.
        """
        in_force = batch.versions_in_force
        if municipality_code not in in_force:
            in_force[municipality_code] = active_version_id(batch, municipality_code)
        version = in_force[municipality_code]
        if version is None:
            raise UnknownMunicipality(f"no directory for municipality {municipality_code}")
        key = (municipality_code, version)
        if key not in self._by_version:
            row = batch.exec(
                select(DirectoryVersion).where(
                    DirectoryVersion.municipality_code == municipality_code, DirectoryVersion.version == version
                )
            ).one()
            self._by_version[key] = parse_config(row.body)
        return self._by_version[key]
