"""Fuzzing: schemathesis against /openapi.json on a real server on loopback, every operation.

The server runs as `banditroute serve` in a child process with auth on (keys from the environment,
one key holding every scope), and schemathesis sends what the document allows and what it does
not. Any 5xx, or any answer that does not match the document (status, content type, body schema,
headers), fails. Bounded: FUZZ_EXAMPLES cases per operation (BANDITROUTE_FUZZ_EXAMPLES to change).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from banditroute.api import openapi
from tests.conftest import ROOT, free_port
from tools.launch import ServerDidNotStart, wait_healthy

KEY = "fuzz-key-every-scope-5d1c"
AUTH = {"Authorization": f"Bearer {KEY}"}
FUZZ_EXAMPLES = int(os.environ.get("BANDITROUTE_FUZZ_EXAMPLES", "25"))
START_TIMEOUT_S = 30.0
# Every check on answers runs (5xx, status codes, content types, body schemas, headers, methods,
# auth enforced). These two judge how strict request validation is beyond what a schema can say
# (an escalate_from naming no catalog model, a policy file whose sha256 does not match): such
# requests are rightly refused with a documented 400, which they would count as failures.
NOT_SCHEMA_CHECKS = [checks.positive_data_acceptance, checks.negative_data_rejection]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), BANDITROUTE_API_KEYS=f"route,reward,admin:{KEY}")
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditroute.cli", "serve", "--port", str(port), "--data-dir", str(tmp / "var")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout_s=START_TIMEOUT_S)
    except ServerDidNotStart as exc:
        raise RuntimeError(f"{exc}: " + (tmp / "server.log").read_text()[-2000:]) from None
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    assert "Traceback" not in (tmp / "server.log").read_text(), "the server logged an unhandled exception"


# The document the server serves is built in code (banditroute.api.openapi), so it is known at collection
# time; the test checks that the running server serves exactly this document.
schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_5xx_and_every_answer_matches_the_document(case: schemathesis.Case, live_url: str) -> None:
    case.call_and_validate(base_url=live_url, headers=AUTH, excluded_checks=NOT_SCHEMA_CHECKS)


def test_the_server_serves_the_fuzzed_document(live_url: str) -> None:
    with urllib.request.urlopen(live_url + "/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == json.loads(json.dumps(openapi.document()))
