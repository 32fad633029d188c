"""Pacing: how many lines to dial now. Pure logic, no IO, explicit `now` (see `types.Pacer`)."""

from dialer.pacing.predictive import PredictiveConfig, PredictivePacer
from dialer.pacing.simple import FixedRatioPacer, PowerPacer, PreviewPacer, ProgressivePacer
from dialer.pacing.types import (
    ABANDON_WINDOW_DAYS,
    REGULATORY_ABANDON_LIMIT,
    AbandonTally,
    DialOutcome,
    EventKind,
    Pacer,
    PacingEvent,
    PacingSnapshot,
)
from dialer.pacing.vicidial import AdaptMode, VicidialAdaptivePacer, VicidialParams

__all__ = [
    "ABANDON_WINDOW_DAYS",
    "REGULATORY_ABANDON_LIMIT",
    "AbandonTally",
    "AdaptMode",
    "DialOutcome",
    "EventKind",
    "FixedRatioPacer",
    "Pacer",
    "PacingEvent",
    "PacingSnapshot",
    "PowerPacer",
    "PredictiveConfig",
    "PredictivePacer",
    "PreviewPacer",
    "ProgressivePacer",
    "VicidialAdaptivePacer",
    "VicidialParams",
]
