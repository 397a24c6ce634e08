"""Intake's composition root."""

from fastapi import FastAPI
from sqlmodel import Session

from services.intake import corrections, handlers, retention
from services.intake.api import router
from services.intake.context import IntakeContext
from services.intake.models import FIELD_LABELS, IntakeOutbox
from services.intake.privacy import BlindIndex, FieldCipher, Vault
from shared.auth import AuthConfigError, load_issuer
from shared.directory import read_directory_files
from shared.directory_in_force import follow_directories
from shared.events import (
    CaseErased,
    CaseTransferred,
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    HouseholdLinked,
    PersonalDetailsCorrected,
    SupportMeetingRosterChanged,
    UseRestrictionChanged,
)
from shared.privacy_policy import policy_of
from shared.runtime import Runtime, ServiceDefinition, create_app
from shared.settings import Settings


class IntakeConfigError(RuntimeError):
    """Intake cannot start without its keys."""


def vault_from(settings: Settings) -> Vault:
    """The personal-data cipher and blind index from settings."""
    if not settings.personal_data_keys or settings.personal_index_key is None:
        raise IntakeConfigError(
            "personal data keys missing: set MARUGOTO_PERSONAL_DATA_KEYS and MARUGOTO_PERSONAL_INDEX_KEY "
            "(marugoto up generates development keys)"
        )
    return Vault(
        cipher=FieldCipher([k.get_secret_value() for k in settings.personal_data_keys]),
        index=BlindIndex(settings.personal_index_key.get_secret_value()),
    )


def _wire(runtime: Runtime) -> IntakeContext:
    settings = runtime.settings
    if settings.auth_private_key_file is None:
        raise AuthConfigError("intake issues tokens: set MARUGOTO_AUTH_PRIVATE_KEY_FILE")
    read = read_directory_files(settings.directory_files)
    context = IntakeContext(
        issuer=load_issuer(settings.auth_private_key_file.read_text(), ttl_s=settings.auth_token_ttl_s),
        vault=vault_from(settings),
        directories={code: directory for code, (directory, _data) in read.items()},
        policies={code: policy_of(data) for code, (_directory, data) in read.items()},
    )
    # The files seed a fresh deployment; the versions the router published since replace them.
    with Session(runtime.engine) as session:
        context.in_force.load_stored(session)
    handlers.wire(runtime, context)
    return context


DEFINITION = ServiceDefinition(
    name="intake",
    title="Marugoto intake",
    description="Partner agencies submit consultations (相談) about a whole household (世帯丸ごと).",
    outbox_model=IntakeOutbox,
    publishes=(
        ConsultationReceived,
        ContactRecorded,
        ConsentGiven,
        ConsentRevoked,
        HouseholdLinked,
        SupportMeetingRosterChanged,
        CaseTransferred,
        UseRestrictionChanged,
        PersonalDetailsCorrected,
        CaseErased,
    ),
    wire=_wire,
    routers=(router, corrections.router, retention.router),
    background=(follow_directories, retention.retention_job),
    field_labels=FIELD_LABELS,
    opens_sealed=True,
)


def create(settings: Settings) -> FastAPI:
    """The intake app for `settings`."""
    return create_app(DEFINITION, settings)
