"""schemathesis over the whole published description, in-process (WSGI): no 5xx, and every
answer conforms to the description (status, content type, headers, body schema), for data the
description allows (positive) and data it forbids (negative: which must get a 4xx).

The app holds real traffic (so report rows are checked against their schema) and a campaign.
Staff operations are called with a real API token of a `marketing` account (it may read
reports and campaigns), so the fuzzer gets past authentication to parameter validation. Half
of the valid beacons and "see my data" bodies carry a live consent's ids, so the fuzzer
also reaches the spool and the export. Rate limits are raised for the run (tests/test_limits.py
tests them) so that the fuzzer reaches what is behind them.

schemathesis' pytest integration (`from_fixture`) does not run on pytest 9, so each operation
is a plain parametrized test driving the operation's hypothesis strategy.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config._checks import NegativeDataRejectionConfig

from tests.conftest import app_config
from tests.helpers import Traffic, decide, make_user, seed_recipient, seed_subscriber
from tracker import create_app
from tracker.clock import utcnow
from tracker.config import load
from tracker.extensions import db
from tracker.services import reports, staff
from tracker.web import openapi

MAX_EXAMPLES = 30
UNLIMITED = "100000 per minute"
REJECTIONS = NegativeDataRejectionConfig().expected_statuses
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]
# Reports' parameters depend on each other (`preset` is ignored once `from` or `to` is given,
# `table` unless format=csv), which a schema per parameter cannot say: for them, invalid data
# is only held to "no 5xx, and a described answer".
CROSS_PARAMETER = {"GET /api/reports/{name}"}
# Answers per (operation, status) over the session: printed with -s, asserted below.
ANSWERS: Counter[tuple[str, int]] = Counter()


@schemathesis.serializer("text/plain")
def _json_as_text(ctx: Any, value: Any) -> bytes:
    """The banner's beacons: JSON sent as text/plain (what navigator.sendBeacon can send)."""
    return json.dumps(value).encode()


@pytest.fixture
def fuzzed_app(database_url: str, tmp_path: Path, dns_server: Any) -> Iterator[Any]:
    app = create_app(app_config(database_url, tmp_path, TRACKER_DNS_SERVERS=[dns_server.address],
                                TRACKER_CONSENT_RATE_LIMIT=UNLIMITED,
                                TRACKER_COLLECT_RATE_LIMIT=UNLIMITED,
                                TRACKER_PRIVACY_RATE_LIMIT=UNLIMITED))
    with app.app_context():
        user = make_user("fuzz@amniotic.studio", "marketing")
        app.config["FUZZ_TOKEN"] = staff.create_token(user, "fuzz", now=utcnow())
        traffic = Traffic()
        now = utcnow()
        for n in range(3):
            who = traffic.visitor(now - timedelta(hours=2), location=True)
            traffic.visit(who, now - timedelta(hours=1, minutes=n * 5),
                          [("/", 0, 12_000), ("/projets/", 30, 40_000)],
                          referrer="https://www.google.fr/")
        traffic.store()
        seed_recipient(seed_subscriber("reader@example.org", now), now)
        app.config["FUZZ_CONSENT"] = decide(app.test_client())
    # No app context stays pushed: each request gets its own, as in production.
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _has_inputs(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every (method, path) of the description with valid data, and with invalid data when
    it takes any input (an operation without parameters or body has nothing to make invalid)."""
    spec = openapi.build(load(), list(reports.REPORTS))
    return [(method.upper(), path, mode)
            for path, ops in spec["paths"].items() for method, operation in ops.items()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if mode is GenerationMode.POSITIVE or _has_inputs(operation)]


def _with_live_ids(case: Any, consent: dict[str, Any], use: bool) -> Any:
    """Put a live consent's ids into a body that has room for them."""
    if use and isinstance(case.body, dict):
        if "url" in case.body or "type" in case.body:
            case.body.update(visitor_id=consent["visitor_id"], consent_id=consent["consent_id"])
        elif "visitor_id" in case.body:
            case.body["visitor_id"] = consent["visitor_id"]
    return case


@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_every_operation_holds_to_the_description(fuzzed_app: Any, method: str, path: str,
                                                  mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzzed_app)
    # Also refusals: a body over the cap (413), a missing download token (410: the link is
    # dead).
    schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[*REJECTIONS, "410", "413"])
    operation = schema.find_operation_by_label(f"{method} {path}")
    assert operation is not None, f"{method} {path} is no longer described"
    headers = {"Authorization": f"Bearer {fuzzed_app.config['FUZZ_TOKEN']}"}
    checks = CONFORMANCE if f"{method} {path}" in CROSS_PARAMETER \
        else [*CONFORMANCE, negative_data_rejection]
    consent = fuzzed_app.config["FUZZ_CONSENT"]
    # Live ids only in valid data: in invalid data they could repair what was broken.
    cases = st.builds(_with_live_ids, operation.as_strategy(generation_mode=mode),
                      st.just(consent), st.booleans() if mode is GenerationMode.POSITIVE
                      else st.just(False))
    seen: Counter[int] = Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=checks)
        seen[response.status_code] += 1

    fuzz()
    ANSWERS.update({(f"{method} {path} {mode.value}", status): n for status, n in seen.items()})
    print(f"{method} {path} [{mode.value}]: {sum(seen.values())} calls, {dict(seen)}")
    assert seen, "the fuzzer sent nothing"
