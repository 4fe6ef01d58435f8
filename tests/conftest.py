"""Shared test setup: a derandomized hypothesis profile for CI, and the path to ../shared/data."""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def cache_folder(tmp_path_factory):
    """The cache folder (gpt/data/cache.py: the default corpus, token ids) of this test session: a fresh one,
    so that tests neither read nor fill the user's own; subprocesses inherit it."""
    old = os.environ.get("TINYTENSOR_CACHE")
    os.environ["TINYTENSOR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["TINYTENSOR_CACHE"]
    if old is None:
        os.environ.pop("TINYTENSOR_CACHE", None)
    else:
        os.environ["TINYTENSOR_CACHE"] = old


@pytest.fixture
def shared_data():
    """The folder of downloaded test data beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA} (see README: Test data)")
    return SHARED_DATA


def devices():
    """The devices to run device tests on: "cpu" always, plus "cuda" when CuPy imports and sees a GPU.

    ``@pytest.mark.parametrize("device", devices())``; CI has no GPU, so there it is just ["cpu"].
    """
    from tinytensor import backend
    return ["cpu"] + (["cuda"] if backend.cuda_available() else [])


def pytest_terminal_summary(terminalreporter):
    """One line saying why tests were skipped, commonest reason first (``-q`` hides pytest's own list)."""
    reasons = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        parts = [f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        terminalreporter.write_line(f"skipped {sum(reasons.values())}, why: " + "; ".join(parts))
