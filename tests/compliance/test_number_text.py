"""What a person reads about a number that is no phone number: one plain clause (the phone
library's "(1) The string supplied..." error-type prefix is not for them). Pure."""

from __future__ import annotations

import pytest

from compliance_rules.numbers import NumberProblem, parse_number

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("raw", ["abc", "", "++", "hello world"])
def test_an_unparsable_numbers_reason_is_plain_text(raw: str) -> None:
    info = parse_number(raw)
    assert info.e164 is None and info.problem is NumberProblem.UNPARSABLE
    assert info.detail and not info.detail.startswith("(") and info.detail[0].islower(), info.detail
    assert not info.detail.endswith(".")
