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
