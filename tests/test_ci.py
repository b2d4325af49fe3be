"""The test run itself: under CI a missing PostgreSQL server fails the run instead of skipping its tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


def run_postgres_test(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CBIR_TEST_POSTGRES"] = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_store.py::test_round_trip[postgres]", "-q", "-p", "no:cacheprovider"],
        cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.slow
def test_an_unreachable_postgres_skips_locally_and_fails_under_ci():
    local = run_postgres_test(None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    ci = run_postgres_test("true")
    assert ci.returncode == 1 and "1 error" in ci.stdout, ci.stdout
    assert "CI is set and no PostgreSQL server is reachable" in ci.stdout
