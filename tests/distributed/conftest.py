"""Shared setup of the distributed tests (the helpers that start mpiexec live in mpi_helpers.py)."""
import pytest

import tinytensor.distributed as dist


@pytest.fixture
def alone(monkeypatch):
    """This test starts uninitialised and outside any MPI launcher's environment: a world of one."""
    monkeypatch.setattr(dist, "_world", None)
    for name in dist._LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)
