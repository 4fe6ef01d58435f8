"""Running the scripts in tests/distributed/scripts/ under ``mpiexec -n N`` from a test, with a timeout.

The tests skip, saying why, when mpi4py or an mpiexec is missing (``pip install -e '.[mpi]'`` provides
both). Every rank gets one thread (two ranks on CI's two cores) and this checkout on its PYTHONPATH. A job
still running at its timeout is killed whole (its process group), never left spinning in a collective.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def mpiexec():
    """The mpiexec beside this Python (a virtual environment's, from the mpich wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def require_mpi():
    """Skip the calling test unless mpi4py is installed and an mpiexec is found."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')")
    if mpiexec() is None:
        pytest.skip("no mpiexec found beside Python or on PATH (pip install -e '.[mpi]' brings MPICH's)")


def clean_env(**extra):
    """This environment without any MPI launcher's variables, this checkout first on PYTHONPATH, one thread."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def run_mpi(script, *args, ranks=2, timeout=120):
    """Run ``scripts/<script>`` on ``ranks`` processes; (exit status, stdout, stderr). Fails the test on timeout."""
    require_mpi()
    command = [mpiexec(), "-n", str(ranks), sys.executable, str(SCRIPTS / script), *map(str, args)]
    proc = subprocess.Popen(command, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script} under mpiexec -n {ranks} still ran after {timeout} s (a rank left waiting?)\n"
                    f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return proc.returncode, out, err
