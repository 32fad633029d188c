"""Schemathesis over the generated OpenAPI document, against a running app: for every operation,
requests generated from its schemas (valid ones, and invalid ones: wrong types, missing fields,
values out of range...), under several tokens, seeded and bounded, each answer checked against
the document (status documented, content type, headers such as `Location`, body schema).

Run it in a thread (`asyncio.to_thread`): it calls the app over HTTP with `requests` while the
app's event loop keeps serving.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@dataclass
class Report:
    """What the run saw: every answer's status per operation, and what did not conform."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def exercise(document: dict[str, Any], base_url: str, tokens: Sequence[str | None], *, seed: int,
             examples: int, allowed_503: frozenset[str] = frozenset()) -> Report:
    """Run every operation of `document` against `base_url`; `allowed_503`: the operations for
    which a 503 (with `Retry-After`) is the right answer in this setup (a part the app runs
    without)."""
    schema = schemathesis.openapi.from_dict(document)
    report = Report()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _exercise_one(operation, mode, session, base_url, tokens, seed, examples, allowed_503, report)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing of this operation can be made invalid (no parameters, no body)
    return report


def _exercise_one(operation: Any, mode: GenerationMode, session: requests.Session, base_url: str,
                  tokens: Sequence[str | None], seed: int, examples: int, allowed_503: frozenset[str],
                  report: Report) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis.seed(seed)
    @given(case=operation.as_strategy(generation_mode=mode), token=st.sampled_from(list(tokens)))
    def run(case: Any, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except (requests.RequestException, UnicodeError, ValueError):
            return  # a request `requests` itself cannot send (e.g. a header that is not Latin-1)
        report.statuses[(label, response.status_code)] += 1
        retry_after = any(name.lower() == "retry-after" for name in response.headers)
        if response.status_code >= 500 and not (response.status_code == 503 and label in allowed_503 and retry_after):
            report.server_errors.append(f"{label} [{mode.value}] {response.status_code}: {response.text[:300]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as error:  # schemathesis' failures: kept, the run goes on
            report.failures.append(f"{label} [{mode.value}] {response.status_code}: {str(error)[:1500]}")

    run()
