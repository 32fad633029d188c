"""A campaign's answering-machine detection settings -> the arguments of Asterisk's `AMD()`.

`AMD()` takes its parameters positionally (all in milliseconds except the counts and the
threshold); a campaign gives any of them by name in `amd_settings`, the rest keep amd.conf's
values. The dialplan (`dialer-amd`) runs `AMD(${AMD_ARGS})`.
"""

from __future__ import annotations

from collections.abc import Mapping

# AMD(initialSilence,greeting,afterGreetingSilence,totalAnalysis Time,miniumWordLength,
#     betweenWordsSilence,maximumNumberOfWords,silenceThreshold,maximumWordLength)
AMD_PARAMETERS: tuple[tuple[str, int, int], ...] = (
    ("initial_silence_ms", 500, 10000),
    ("greeting_ms", 500, 10000),
    ("after_greeting_silence_ms", 100, 5000),
    ("total_analysis_time_ms", 1000, 15000),
    ("min_word_length_ms", 20, 1000),
    ("between_words_silence_ms", 20, 1000),
    ("maximum_number_of_words", 1, 20),
    ("silence_threshold", 1, 32767),
    ("maximum_word_length_ms", 500, 10000),
)


class AmdSettingsError(ValueError):
    """A campaign's AMD setting is out of range; the message names it."""


def amd_arguments(settings: Mapping[str, object]) -> str:
    """`AMD()`'s argument string; empty positions keep amd.conf's defaults."""
    values: list[str] = []
    for name, low, high in AMD_PARAMETERS:
        raw = settings.get(name)
        if raw is None:
            values.append("")
            continue
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise AmdSettingsError(f"amd_settings.{name} must be a whole number from {low} to {high}, got {raw!r}")
        values.append(str(raw))
    while values and values[-1] == "":
        values.pop()
    return ",".join(values)
