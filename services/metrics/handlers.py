"""Metrics' subscribers: every counted event, exactly once."""

from services.metrics import service
from services.metrics.models import MetricsProcessedEvent
from shared.consumer import register_consumer
from shared.events import (
    ConferenceScheduled,
    ConsultationReceived,
    Envelope,
    EventData,
    ReferralRequested,
    RoutingDecided,
)
from shared.runtime import Runtime

COUNTED = (ConsultationReceived, RoutingDecided, ReferralRequested, ConferenceScheduled)


def wire(runtime: Runtime) -> None:
    """Count consultations, decisions, referrals and meetings into the indicators."""

    def on_event(envelope: Envelope[EventData]) -> None:
        runtime.apply_once(MetricsProcessedEvent, envelope, lambda session: service.count(session, envelope))

    for model in COUNTED:
        register_consumer(
            runtime.broker,
            runtime.settings,
            service="metrics",
            model=model,
            apply=on_event,
            description=f"Counts {model.event_type} events into the indicators, once each.",
        )
