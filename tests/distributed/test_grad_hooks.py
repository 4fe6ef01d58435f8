"""The two engine hooks DDP is built on: post-accumulate-grad hooks and callbacks at the end of backward()."""
import numpy as np
import pytest

import tinytensor as tt
from tinytensor.tensor import queue_final_callback


def test_the_hook_sees_the_final_gradient_once_per_pass():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append((t is w, t.grad.copy())))
    y = (w * w).sum() + (w * 3.0).sum()      # two paths into w: the hook waits for both
    y.backward()
    assert len(seen) == 1 and seen[0][0]
    np.testing.assert_allclose(seen[0][1], [5.0, 7.0])
    (w * 2.0).sum().backward()               # a second pass: called again, with the accumulated gradient
    assert len(seen) == 2
    np.testing.assert_allclose(seen[1][1], [7.0, 9.0])


def test_the_hook_runs_in_reverse_order_of_use_and_not_without_a_gradient():
    a, b, unused = (tt.tensor([1.0], requires_grad=True) for _ in range(3))
    order = []
    for name, t in (("a", a), ("b", b), ("unused", unused)):
        t.register_post_accumulate_grad_hook(lambda t, name=name: order.append(name))
    ((a * 2.0).tanh() * b).sum().backward()
    assert sorted(order) == ["a", "b"]


def test_a_late_layers_hook_fires_before_backward_reaches_the_earlier_layers():
    """What lets DDP overlap: the last layer's weight is final (and its hook runs) right after the last
    layer's backward, while the first layer has no gradient yet."""
    from tinytensor import nn
    tt.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    seen = {}
    net[2].weight.register_post_accumulate_grad_hook(lambda t: seen.update(last=net[0].weight.grad))
    net[0].bias.register_post_accumulate_grad_hook(lambda t: seen.update(first=net[2].bias.grad))
    (net(tt.tensor(np.ones((5, 3)))) ** 2).sum().backward()
    assert seen["last"] is None, "the last layer's hook ran only after backward reached the first layer"
    assert seen["first"] is not None


def test_removing_a_hook_and_hooks_on_non_leaves():
    w = tt.tensor([1.0], requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(calls.append)
    w.register_post_accumulate_grad_hook(calls.append)
    handle.remove()
    handle.remove()                          # twice is harmless
    (w * 2.0).sum().backward()
    assert calls == [w]
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2.0).register_post_accumulate_grad_hook(calls.append)


def test_final_callbacks_run_once_after_every_gradient_is_in():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    v = tt.tensor([3.0], requires_grad=True)
    log = []

    def hook(t):
        log.append("hook")
        queue_final_callback(lambda: log.append(("end", w.grad.tolist(), v.grad.tolist())))
    w.register_post_accumulate_grad_hook(hook)
    ((w * v).sum()).backward()
    assert log == ["hook", ("end", [3.0, 3.0], [3.0])]
    (w.sum()).backward()                     # callbacks of the last pass do not come back
    assert log[2:] == ["hook", ("end", [4.0, 4.0], [3.0])]


def test_queue_final_callback_outside_backward_and_after_a_failed_pass():
    with pytest.raises(RuntimeError, match="only while backward"):
        queue_final_callback(lambda: None)
    w = tt.tensor([1.0], requires_grad=True)
    ran = []

    def hook(t):
        queue_final_callback(lambda: ran.append(1))
        raise ValueError("hook failed")
    handle = w.register_post_accumulate_grad_hook(hook)
    with pytest.raises(ValueError, match="hook failed"):
        (w * 2.0).sum().backward()
    assert ran == []                         # a pass that raised drops its callbacks...
    with pytest.raises(RuntimeError, match="only while backward"):
        queue_final_callback(lambda: None)   # ...and leaves the engine outside any pass
    handle.remove()
    (w * 2.0).sum().backward()
    assert ran == []


def test_two_threads_in_backward_at_once_each_run_their_own_callbacks():
    """Thread A's pass ends while thread B's is still running: each pass runs its own callbacks, once."""
    import threading
    b_inside, a_done = threading.Event(), threading.Event()
    ran, errors = [], []

    def worker(name, hook):
        try:
            w = tt.tensor([1.0], requires_grad=True)
            w.register_post_accumulate_grad_hook(hook)
            (w * 2.0).sum().backward()
        except Exception as exc:              # noqa: BLE001  (reported below)
            errors.append(f"{name}: {exc!r}")
        finally:
            if name == "a":
                a_done.set()

    def hook_a(t):
        queue_final_callback(lambda: ran.append(("a", threading.current_thread().name)))
        b_inside.wait(10)                     # B's pass starts while A's runs

    def hook_b(t):
        queue_final_callback(lambda: ran.append(("b", threading.current_thread().name)))
        b_inside.set()
        a_done.wait(10)                       # A's pass ends while B's runs
    threads = [threading.Thread(target=worker, args=(n, h), name=n) for n, h in (("a", hook_a), ("b", hook_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and sorted(ran) == [("a", "a"), ("b", "b")], (errors, ran)
