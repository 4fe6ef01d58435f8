"""Thread regions (tinytensor.schedule.parallel), the blocked causal attention and the heap settings: a result must
not depend on how the work was cut up or on how many threads did it."""
import threading

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import config, optim
from tinytensor.schedule import heap, parallel
from tinytensor import reference as R
from tinytensor.schedule import attention

from test_fused import assert_same


@pytest.fixture
def threads(monkeypatch):
    """Two threads, and every op's work split however small it is."""
    before = config.threads
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(parallel, "BLAS_MIN_WORK", 0)
    tt.set_num_threads(2)
    yield
    tt.set_num_threads(before)


def serial_and_threaded(fn):
    """fn() once with one thread, once with two; both results (fn returns a list of arrays)."""
    before = config.threads
    try:
        tt.set_num_threads(1)
        one = fn()
        tt.set_num_threads(2)
        two = fn()
    finally:
        tt.set_num_threads(before)
    return one, two


# ----- the regions themselves -----

def test_every_job_runs_once(threads):
    seen, lock = [], threading.Lock()

    def job(i):
        with lock:
            seen.append(i)
    parallel.run(job, range(50))
    assert sorted(seen) == list(range(50))


def test_an_error_in_a_job_reaches_the_caller_and_the_next_region_still_runs(threads):
    def job(i):
        if i == 3:
            raise ZeroDivisionError("job 3")
    with pytest.raises(ZeroDivisionError, match="job 3"):
        parallel.run(job, range(6))
    done = []
    parallel.run(done.append, range(4))
    assert sorted(done) == [0, 1, 2, 3]


def test_a_region_inside_a_region_runs_inline(threads):
    out = np.zeros((4, 4))

    def outer(i):
        parallel.run(lambda j: out.__setitem__((i, j), i * 4 + j), range(4))
    parallel.run(outer, range(4))
    np.testing.assert_array_equal(out.ravel(), np.arange(16))


@pytest.mark.skipif(not parallel.blas_controlled(), reason="no OpenBLAS that tinytensor can drive")
def test_blas_is_held_to_one_thread_inside_a_region_and_given_back_after(threads):
    get, _ = parallel._blas
    before, inside = get(), []
    parallel.run(lambda i: inside.append(get()), range(2), uses_blas=True)
    assert inside == [1, 1]
    assert get() == before
    with pytest.raises(RuntimeError):
        parallel.run(lambda i: (_ for _ in ()).throw(RuntimeError("boom")), range(2), uses_blas=True)
    assert get() == before


def test_split_leading_covers_every_index_once():
    for shape, parts in [((8, 6), 2), ((1, 12), 2), ((2, 3), 4), ((3,), 5), ((1, 1), 2)]:
        hits = np.zeros(shape, dtype=int)
        for ix in parallel.split_leading(shape, parts):
            hits[ix] += 1
        assert (hits == 1).all(), (shape, parts)


def test_two_user_threads_training_at_once_get_their_own_right_answers(threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 16)).astype(np.float32)
    w = rng.standard_normal((24, 16)).astype(np.float32)

    def grads():
        xt, wt = tt.tensor(x, requires_grad=True), tt.tensor(w, requires_grad=True)
        F.layer_norm(F.linear(xt, wt), None, None).sum().backward()
        return xt.grad, wt.grad
    expected = grads()
    results = [None] * 4

    def worker(i):
        results[i] = grads()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for got in results:
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ----- ops: one thread or two, the same numbers -----

def _grads_of(fn, *arrays):
    inputs = [tt.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    g = np.random.default_rng(5).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    return [out.data] + [x.grad for x in inputs]


@pytest.mark.parametrize("name", ["linear", "layer_norm", "gelu", "cross_entropy", "attention", "attention_dropout"])
def test_ops_give_the_same_numbers_on_one_thread_and_on_two(monkeypatch, name):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(parallel, "BLAS_MIN_WORK", 0)
    monkeypatch.setattr(attention, "BLOCK", 4)
    rng = np.random.default_rng(1)
    r = lambda *shape: rng.standard_normal(shape).astype(np.float32)       # noqa: E731
    targets = rng.integers(0, 11, (3, 7))
    cases = {
        "linear": (F.linear, [r(3, 7, 5), r(6, 5), r(6)]),
        "layer_norm": (F.layer_norm, [r(3, 7, 5), r(5), r(5)]),
        "gelu": (F.gelu, [r(6, 9)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets), [r(3, 7, 11)]),
        "attention": (F.scaled_dot_product_attention, [r(2, 3, 17, 4), r(2, 3, 17, 4), r(2, 3, 17, 4)]),
        "attention_dropout": (lambda q, k, v: (tt.manual_seed(3), F.scaled_dot_product_attention(
            q, k, v, dropout_p=0.3))[1], [r(2, 3, 16, 4), r(2, 3, 19, 4), r(2, 3, 19, 4)]),
    }
    fn, arrays = cases[name]
    one, two = serial_and_threaded(lambda: _grads_of(fn, *arrays))
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6)


def test_adamw_steps_the_same_on_one_thread_and_on_two(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    rng = np.random.default_rng(2)
    start, grad = rng.standard_normal((40, 3)).astype(np.float32), rng.standard_normal((40, 3)).astype(np.float32)

    def run():
        p = tt.tensor(start.copy(), requires_grad=True)
        opt = optim.AdamW([p], lr=0.1, weight_decay=0.1)
        for _ in range(3):
            p.grad = grad.copy()
            opt.step()
        return [p.data]
    one, two = serial_and_threaded(run)
    np.testing.assert_array_equal(one[0], two[0])


# ----- causal attention in blocks of query rows -----

@pytest.mark.parametrize("T,S", [(8, 8), (9, 9), (13, 13), (8, 11), (13, 20)])
def test_query_blocks_cover_every_query_and_see_exactly_the_past(T, S, monkeypatch):
    monkeypatch.setattr(attention, "BLOCK", 2)
    blocks = attention.query_blocks(T, S, True, np)
    assert len(blocks) > 1
    assert blocks[0][0] == 0 and blocks[-1][1] == T and blocks[-1][2] == S
    for (lo, hi, keys), (next_lo, _, _) in zip(blocks, blocks[1:]):
        assert hi == next_lo
    for lo, hi, keys in blocks:
        assert keys == (S - T) + hi          # the last query of the block sees keys up to its own position


@pytest.mark.parametrize("T,S", [(9, 9), (12, 15)])
def test_blocked_causal_attention_matches_the_twin_and_gradcheck(T, S, monkeypatch):
    monkeypatch.setattr(attention, "BLOCK", 2)
    assert len(attention.query_blocks(T, S, True, np)) > 1
    rng = np.random.default_rng(4)
    q = tt.tensor(rng.standard_normal((2, 2, T, 3)), dtype=np.float64, requires_grad=True)
    k, v = (tt.tensor(rng.standard_normal((2, 2, S, 3)), dtype=np.float64, requires_grad=True) for _ in range(2))
    assert_same(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
                lambda q, k, v: R.scaled_dot_product_attention(q, k, v, causal=True), [q, k, v])
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True), q, k, v)

    def with_dropout(q, k, v):
        tt.manual_seed(11)
        return F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.25)
    assert tt.gradcheck(with_dropout, q, k, v)


def test_blocked_attention_equals_one_block(monkeypatch):
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((1, 2, 300, 8)).astype(np.float32) for _ in range(3))
    blocked = _grads_of(F.scaled_dot_product_attention, q, k, v)
    monkeypatch.setattr(attention, "BLOCK", 10_000)     # one block: every score computed
    whole = _grads_of(F.scaled_dot_product_attention, q, k, v)
    for a, b in zip(blocked, whole):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ----- the heap settings -----

def test_heap_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(config, "heap_tuned", False)
    monkeypatch.setenv("TINYTENSOR_HEAP_TUNING", "0")
    assert tt.tune_heap() is False and not config.heap_tuned


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc only")
def test_heap_tuning_is_applied_on_glibc():
    assert tt.tune_heap() is True
    assert config.heap_tuned and heap.tuned


def test_importing_tinytensor_leaves_malloc_alone():
    """Heap tuning changes the whole process: a program asks for it (tt.tune_heap()), importing never does."""
    import subprocess
    import sys
    code = ("import tinytensor as tt, tinytensor.functional, gpt\n"
            "from tinytensor.schedule import heap\n"
            "print(tt.config.heap_tuned, heap.tuned)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_runs_threaded_ops(threads):
    import os
    x = tt.tensor(np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32), requires_grad=True)
    F.gelu(x).sum().backward()                  # the parent's pool exists before the fork
    expected = x.grad.copy()
    pid = os.fork()
    if pid == 0:                                 # child: the same work, then report by exit status
        code = 1
        try:
            y = tt.tensor(x.data, requires_grad=True)
            F.gelu(y).sum().backward()
            code = 0 if np.allclose(y.grad, expected, atol=1e-6) else 2
        finally:
            os._exit(code)
    import signal
    import time
    deadline = time.monotonic() + 30
    while True:                                  # a child stuck waiting for threads it lacks must fail, not hang
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in a thread region")
        time.sleep(0.01)
    assert os.WEXITSTATUS(status) == 0


def test_on_one_thread_holds_blas_and_gives_the_setting_back():
    if not parallel.blas_controlled():
        pytest.skip("this NumPy's BLAS cannot be driven")
    get, _ = parallel._blas
    before = get()
    with parallel.blas_threads(2):
        setting = get()                         # 2, or fewer where OpenBLAS was built for fewer
        assert parallel.on_one_thread(get) == 1
        assert get() == setting
    assert get() == before
