"""Issue 9, item 11: the API documents describe the API. Schemathesis generates requests from the
committed documents (docs/openapi/*.json) for every operation of signing, the counter and the notifier, valid
and invalid, on both databases, against the real processes; no answer may be a 5xx, and every
answer must be one the document lists, with the documented content type, headers and body.

Bounded: MAX_EXAMPLES per operation and phase, so the whole run takes about a minute."""

import json
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
)

from tests.system import System

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory):
    """One running system per backend for the whole module, with one petition in it, so that
    half the generated requests name a real petition instead of an unknown one."""
    system = System(tmp_path_factory.mktemp(f"schema-{request.param}"), request.param)
    system.start()
    system.answers = defaultdict(Counter)  # "METHOD /path" -> status -> how many
    try:
        system.petition = system.create_petition("schema")
        yield system
        print(f"\n{request.param}: " + "; ".join(f"{op} {dict(sorted(statuses.items()))}"
                                                for op, statuses in sorted(system.answers.items())))
        if len(system.answers) == OPERATIONS:  # the whole module ran: each operation also succeeded
            assert all(any(status < 300 for status in statuses) for statuses in system.answers.values()), \
                system.answers
    finally:
        system.stop()


def loaded(service: str):
    return schemathesis.openapi.from_dict(json.loads((DOCS / f"{service}.json").read_text()))


def aim(case, stack: System) -> None:
    """Half the cases (chosen by a stable hash, so Hypothesis can shrink) name the real petition,
    and every case carries the token its path needs; an unknown one still gets through the rest."""
    names = {"ref": stack.petition["slug"], "petition_id": stack.petition["id"]}
    for name, value in names.items():
        current = (case.path_parameters or {}).get(name)
        if current is not None and zlib.crc32(str(current).encode()) % 2:
            case.path_parameters[name] = value
    token = stack.signing.env["GROUNDSWELL_INTERNAL_TOKEN"] if "/internal/" in case.path else stack.token
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def call(case, stack: System, base_url: str) -> None:
    aim(case, stack)
    response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
    stack.answers[f"{case.method} {case.path}"][response.status_code] += 1


signing = loaded("signing")
counter = loaded("counter").exclude(path_regex=r"/count/events$")  # a stream: tests/e2e/test_live_streams.py
notifier = loaded("notifier")
OPERATIONS = sum(sum(1 for _ in api.get_all_operations()) for api in (signing, counter, notifier))


@signing.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_signing_answers_as_documented(case, stack):
    call(case, stack, stack.signing.url)


@counter.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_counter_answers_as_documented(case, stack):
    call(case, stack, stack.counter.url)


@notifier.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_notifier_answers_as_documented(case, stack):
    call(case, stack, stack.notifier.url)
