"""Work too small to be worth a thread hand-off stays on the calling thread (tinytensor/schedule/parallel.py's
thresholds), with two threads configured; results do not depend on it (test_parallel.py)."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import config
from tinytensor.schedule import parallel


@pytest.fixture
def regions(monkeypatch):
    """Two threads; the number of jobs of every parallel region run, in order."""
    before = config.threads
    tt.set_num_threads(2)
    sizes, real = [], parallel.run

    def run(fn, jobs, uses_blas=False):
        jobs = list(jobs)
        sizes.append(len(jobs))
        return real(fn, jobs, uses_blas)
    monkeypatch.setattr(parallel, "run", run)
    yield sizes
    tt.set_num_threads(before)


@pytest.mark.parametrize("rows,split", [(8, False), (4096, True)])
def test_linear_backward_hands_off_only_enough_work(regions, rows, split):
    rng = np.random.default_rng(0)
    x = tt.tensor(rng.standard_normal((rows, 32)), dtype=np.float32, requires_grad=True)
    w = tt.tensor(rng.standard_normal((64, 32)), dtype=np.float32, requires_grad=True)
    b = tt.tensor(rng.standard_normal(64), dtype=np.float32, requires_grad=True)
    y = F.linear(x, w, b)
    assert rows * 32 * 64 < parallel.BLAS_MIN_WORK or split
    regions.clear()
    y.sum().backward()
    assert max(regions) == (2 if split else 1)
    np.testing.assert_allclose(x.grad, np.ones((rows, 64), np.float32) @ w.data, rtol=1e-5)
    np.testing.assert_allclose(w.grad, np.ones((64, rows), np.float32) @ x.data, rtol=1e-4)
    np.testing.assert_allclose(b.grad, np.full(64, rows, np.float32), rtol=1e-6)
