"""The campaign's AMD settings reach Asterisk's AMD() in the right positions, or are refused."""

from __future__ import annotations

import pytest

from dialer.campaign.amd import AmdSettingsError, amd_arguments


def test_no_settings_keep_amd_conf() -> None:
    assert amd_arguments({}) == ""
    assert amd_arguments({"machine_action": "hangup"}) == ""  # other campaign keys are ignored


def test_settings_go_to_their_positions() -> None:
    assert amd_arguments({"greeting_ms": 1500}) == ",1500"
    assert amd_arguments({"initial_silence_ms": 2500, "after_greeting_silence_ms": 800}) == "2500,,800"
    assert amd_arguments({"maximum_word_length_ms": 5000}).split(",") == ["", "", "", "", "", "", "", "", "5000"]


@pytest.mark.parametrize("bad", [0, 99999, "1500", 1.5, True])
def test_out_of_range_or_mistyped_settings_are_named(bad: object) -> None:
    with pytest.raises(AmdSettingsError, match=r"amd_settings\.greeting_ms"):
        amd_arguments({"greeting_ms": bad})
