"""The engine refuses what would give silently wrong gradients, and its switches are per thread:
version checks on in-place changes, thread-local grad mode, no gradients for integer tensors, and the
post-accumulate-grad hook that data parallelism hangs on."""
import threading

import numpy as np
import pytest

import tinytensor as tt
from tinytensor import nn, optim


# ----- a tensor changed after an op used it (issue 15, item 9) -----

def test_replacing_data_after_use_makes_backward_refuse_naming_op_and_shape():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    x.data = np.full(3, 10.0, np.float32)            # the probe's case: the gradient would be [20, 20, 20]
    with pytest.raises(RuntimeError, match=r"backward of 'mul': an input of shape \(3,\) was changed") as info:
        y.backward()
    assert "\n" not in str(info.value)
    assert x.grad is None


def test_augmented_assignment_to_data_counts_as_a_change():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    x.data += 1                                       # Python assigns the result back through the setter
    with pytest.raises(RuntimeError, match="mul"):
        y.backward()


def test_changing_an_op_result_that_its_backward_reads_is_refused():
    x = tt.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()                                       # exp's backward reads its own result
    y.data = np.zeros(2, np.float32)
    with pytest.raises(RuntimeError, match=r"backward of 'exp': its result of shape \(2,\)"):
        y.sum().backward()


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.AdamW(ps, lr=0.1)],
                         ids=["SGD", "AdamW"])
def test_an_optimizer_step_between_forward_and_backward_is_refused(make_opt):
    layer = nn.Linear(3, 2)
    opt = make_opt(layer.parameters())
    x = tt.tensor(np.ones((4, 3)))
    layer(x).sum().backward()
    loss = layer(x).sum()                            # made with the weights before the step
    opt.step()
    with pytest.raises(RuntimeError, match="was changed in place"):
        loss.backward()


def test_the_usual_loop_and_changes_before_use_are_not_refused():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.data = np.array([1.0, 2.0, 3.0], np.float32)   # before any op used it
    opt = optim.SGD([x], lr=0.1)
    for _ in range(2):                               # forward, backward, step, forward, ...
        opt.zero_grad()
        (x * x).sum().backward()
        opt.step()
    np.testing.assert_allclose(x.grad, 2 * np.array([0.8, 1.6, 2.4]), rtol=1e-6)


def test_writing_into_the_array_is_caught_under_detect_anomaly():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tt.detect_anomaly():
        y = (x * x).sum()
        x.data[:] = 10                               # straight into the NumPy array: no setter runs
        with pytest.raises(RuntimeError, match=r"backward of 'mul': an input of shape \(3,\) was written into"):
            y.backward()


def test_detect_anomaly_passes_a_clean_graph_with_views_and_slices():
    x = tt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with tt.detect_anomaly():
        ((x[0] * x[1]).sum() + x.T.reshape(6).exp().sum()).backward()
    expected = np.stack([np.arange(3.0, 6.0), np.arange(3.0)]) + np.exp(np.arange(6.0)).reshape(2, 3)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-6)


# ----- grad mode is per thread (issue 15, item 14) -----

def _record_in_thread(before_op=None):
    """Run one op in a new thread (optionally after ``before_op`` there); return whether it recorded."""
    x = tt.tensor([1.0], requires_grad=True)
    result = {}

    def work():
        if before_op:
            before_op()
        result["recorded"] = (x * 2).requires_grad
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return result["recorded"]


def test_no_grad_held_in_one_thread_leaves_another_recording():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def evaluate():                                   # thread A: sits inside no_grad
        with tt.no_grad():
            inside.set()
            done.wait(10)
            seen["a"] = tt.is_grad_enabled()

    a = threading.Thread(target=evaluate)
    a.start()
    inside.wait(10)
    try:
        assert tt.is_grad_enabled()                  # this thread (B) still records
        x = tt.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        assert y.requires_grad
    finally:
        done.set()
        a.join()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2, 4])
    assert seen["a"] is False


def test_a_new_thread_starts_with_recording_on_even_from_inside_no_grad():
    with tt.no_grad():
        assert _record_in_thread() is True
    assert _record_in_thread(lambda: tt.set_grad_enabled(False)) is False
    assert tt.is_grad_enabled()                      # the other thread's switch did not reach this one


def test_enable_grad_and_set_grad_enabled():
    x = tt.tensor([1.0], requires_grad=True)
    with tt.no_grad():
        with tt.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with tt.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tt.is_grad_enabled()
    try:
        tt.set_grad_enabled(False)                   # as a plain call it switches at once
        assert not (x * 2).requires_grad
    finally:
        tt.set_grad_enabled(True)

    @tt.set_grad_enabled(False)
    def frozen():
        return (x * 2).requires_grad
    assert tt.is_grad_enabled()                      # decorating switched nothing
    assert frozen() is False and tt.is_grad_enabled()

    @tt.no_grad()
    def inner():
        return tt.is_grad_enabled()
    with tt.no_grad():                               # a decorated function nests and restores
        assert inner() is False and not tt.is_grad_enabled()
    assert tt.is_grad_enabled()


# ----- integer tensors never require gradients (issue 15, Low) -----

def test_an_integer_tensor_cannot_be_given_requires_grad_by_assignment():
    t = tt.tensor([1, 2, 3])
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, not int64"):
        t.requires_grad = True
    assert t.requires_grad is False
    with pytest.raises(TypeError, match="floating-point"):
        tt.arange(3, requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        t.requires_grad_()
    t.requires_grad = False                          # turning it off is always fine
    f = tt.tensor([1.0])
    f.requires_grad = True
    assert f.requires_grad


# ----- the post-accumulate-grad hook -----

def test_post_accumulate_grad_hook_sees_each_leafs_final_gradient_once_per_backward():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    b = tt.tensor([0.5], requires_grad=True)
    unused = tt.tensor([3.0], requires_grad=True)
    calls = []
    for t in (w, b, unused):
        t.register_post_accumulate_grad_hook(lambda t: calls.append((t, t.grad.copy())))

    def loss():                                      # w is used three times: one hook call, all summed
        return (w * w).sum() + (w * 3).sum() + (w[0] * b).sum()
    loss().backward()
    assert sorted(id(t) for t, _ in calls) == sorted([id(w), id(b)])   # once each; unused: not reached
    np.testing.assert_allclose(dict((id(t), g) for t, g in calls)[id(w)], [2 + 3 + 0.5, 4 + 3])
    calls.clear()
    loss().backward()                                # the second pass: called again, with the sum so far
    np.testing.assert_allclose(dict((id(t), g) for t, g in calls)[id(w)], 2 * np.array([5.5, 7]))


def test_post_accumulate_grad_hook_handle_removes_and_misuse_is_refused():
    w = tt.tensor([1.0], requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(calls.append)
    other = w.register_post_accumulate_grad_hook(lambda t: calls.append("other"))
    (w * 2).sum().backward()
    handle.remove()
    (w * 2).sum().backward()
    assert calls[0] is w and calls[1:] == ["other", "other"]
    other.remove()
    other.remove()                                   # removing twice is harmless
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tt.tensor([1.0]).register_post_accumulate_grad_hook(print)
