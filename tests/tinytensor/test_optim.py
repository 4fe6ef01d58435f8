"""Optimizers against NumPy re-implementations of PyTorch's update rules, state dicts, gradient clipping."""
import copy
import math

import numpy as np
import pytest

import tinytensor as tt
from tinytensor import optim

STEPS = 6


def grad_at(p, t):
    """A gradient that depends on the parameter and the step, so the trajectory matters."""
    return 2.0 * p + np.sin(np.arange(p.size).reshape(p.shape) + t)


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    w = tt.tensor(rng.standard_normal((3, 2)), dtype=np.float64, requires_grad=True)
    b = tt.tensor(rng.standard_normal(2), dtype=np.float64, requires_grad=True)
    return w, b


def set_grads(params, t):
    for p in params:
        p.grad = grad_at(p.data, t)


# ----- the reference rules, written from PyTorch's documentation -----

def sgd_reference(p, grads_fn, lr, momentum, weight_decay, steps):
    p, buf = p.copy(), None
    for t in range(steps):
        g = grads_fn(p, t) + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = buf
        p = p - lr * g
    return p


def adamw_reference(p, grads_fn, lr, betas, eps, weight_decay, steps, start=0):
    p = p.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    b1, b2 = betas
    for t in range(1, steps + 1):
        g = grads_fn(p, start + t - 1)
        p = p * (1 - lr * weight_decay)                     # decoupled weight decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)  # bias correction
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_sgd_matches_the_reference(momentum, weight_decay):
    w, b = make_params()
    start = [w.data.copy(), b.data.copy()]
    opt = optim.SGD([w, b], lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for t in range(STEPS):
        set_grads([w, b], t)
        opt.step()
    for p, p0 in zip((w, b), start):
        np.testing.assert_allclose(p.data, sgd_reference(p0, grad_at, 0.1, momentum, weight_decay, STEPS), rtol=1e-12)


def test_adamw_matches_the_reference_with_two_param_groups():
    w, b = make_params()
    start = [w.data.copy(), b.data.copy()]
    opt = optim.AdamW([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                      lr=0.05, betas=(0.8, 0.95), eps=1e-6)
    for t in range(STEPS):
        set_grads([w, b], t)
        opt.step()
    np.testing.assert_allclose(w.data, adamw_reference(start[0], grad_at, 0.05, (0.8, 0.95), 1e-6, 0.1, STEPS),
                               rtol=1e-12)
    np.testing.assert_allclose(b.data, adamw_reference(start[1], grad_at, 0.05, (0.8, 0.95), 1e-6, 0.0, STEPS),
                               rtol=1e-12)
    assert not np.allclose(w.data, adamw_reference(start[0], grad_at, 0.05, (0.8, 0.95), 1e-6, 0.0, STEPS))


def test_adamw_in_cache_sized_pieces_matches_the_reference(monkeypatch):
    """A parameter larger than a piece is updated piece by piece (the last one shorter): every element
    must still follow the rule, none skipped or updated twice."""
    from tinytensor.schedule import parallel
    monkeypatch.setattr(parallel, "CACHE_BLOCK", 4)      # (3, 5) = 15 elements: pieces of 4, 4, 4, 3
    p = tt.tensor(np.random.default_rng(1).standard_normal((3, 5)), dtype=np.float64, requires_grad=True)
    start = p.data.copy()
    opt = optim.AdamW([p], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    for t in range(STEPS):
        set_grads([p], t)
        opt.step()
    np.testing.assert_allclose(p.data, adamw_reference(start, grad_at, 0.05, (0.8, 0.95), 1e-6, 0.1, STEPS),
                               rtol=1e-12)


def test_adamw_first_step_is_lr_times_sign_thanks_to_bias_correction():
    p = tt.tensor([1.0, -2.0, 3.0], dtype=np.float64, requires_grad=True)
    opt = optim.AdamW([p], lr=0.01, weight_decay=0.0)
    p.grad = np.array([0.001, -50.0, 7.0])
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.01, -2.0 + 0.01, 3.0 - 0.01], rtol=1e-6)


def test_adamw_default_decays_every_parameter():
    p = tt.tensor([2.0], dtype=np.float64, requires_grad=True)
    opt = optim.AdamW([p], lr=0.1)
    p.grad = np.zeros(1)
    opt.step()                                           # zero gradient: only the decay moves p
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.1 * 0.01)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_keep_the_parameter_dtype(dtype):
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.AdamW(ps)):
        p = tt.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
        opt = make([p])
        for _ in range(2):
            (p * p).sum().backward()
            opt.step()
            opt.zero_grad()
        assert p.dtype == dtype and p.grad is None
        assert all(v.dtype == dtype for s in opt.state.values() for v in s.values() if hasattr(v, "dtype"))


def test_parameters_without_gradient_are_skipped():
    w, b = make_params()
    before = b.data.copy()
    opt = optim.AdamW([w, b], lr=0.1)
    w.grad = np.ones_like(w.data)
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    assert 1 not in opt.state


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_state_dict_round_trip_gives_identical_later_steps(kind):
    def make(params):
        if kind == "sgd":
            return optim.SGD(params, lr=0.05, momentum=0.9)
        return optim.AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], lr=0.05)

    w, b = make_params()
    opt = make([w, b])
    for t in range(3):
        set_grads([w, b], t)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    state = opt.state_dict()
    resumed = []
    for _ in range(2):                                   # load the same dict twice: neither may disturb it
        w2, b2 = (tt.tensor(p.data.copy(), dtype=np.float64, requires_grad=True) for p in (w, b))
        opt2 = make([w2, b2])
        opt2.load_state_dict(state)
        resumed.append((opt2, w2, b2))
    for t in range(3, 6):
        set_grads([w, b], t)
        opt.step()
        for opt2, w2, b2 in resumed:
            set_grads([w2, b2], t)
            opt2.step()
    for _, w2, b2 in resumed:
        np.testing.assert_array_equal(w2.data, w.data)
        np.testing.assert_array_equal(b2.data, b.data)
    for i, entry in saved["state"].items():
        for k, v in entry.items():
            np.testing.assert_array_equal(state["state"][i][k], v)


def test_load_state_dict_restores_hyperparameters_and_checks_shapes():
    w, b = make_params()
    opt = optim.AdamW([w, b], lr=0.5, betas=(0.7, 0.9))
    set_grads([w, b], 0)
    opt.step()
    state = opt.state_dict()
    other = optim.AdamW(list(make_params(1)), lr=0.001)
    other.load_state_dict(state)
    assert other.param_groups[0]["lr"] == 0.5 and other.param_groups[0]["betas"] == (0.7, 0.9)
    assert other.state[0]["step"] == 1
    with pytest.raises(ValueError, match="shape"):
        optim.AdamW([b, w]).load_state_dict(state)
    with pytest.raises(ValueError, match="groups"):
        optim.AdamW([{"params": [w]}, {"params": [b]}]).load_state_dict(state)


def test_zero_grad_forgets_gradients():
    w, b = make_params()
    set_grads([w, b], 0)
    optim.SGD([w, b], lr=0.1).zero_grad()
    assert w.grad is None and b.grad is None


def test_clip_grad_norm_returns_the_norm_before_and_scales():
    a = tt.tensor([0.0, 0.0], dtype=np.float64, requires_grad=True)
    b = tt.tensor([0.0], dtype=np.float64, requires_grad=True)
    shared = np.array([3.0, 4.0])
    a.grad, b.grad = shared, np.array([12.0])
    norm = optim.clip_grad_norm([a, b], max_norm=6.5)
    assert norm == pytest.approx(13.0, rel=1e-12)
    scale = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * scale, 4.0 * scale], rtol=1e-12)
    np.testing.assert_allclose(b.grad, [12.0 * scale], rtol=1e-12)
    np.testing.assert_array_equal(shared, [3.0, 4.0])           # a shared gradient array is not edited
    assert math.sqrt(float((a.grad ** 2).sum() + (b.grad ** 2).sum())) == pytest.approx(6.5, rel=1e-6)


def test_clip_grad_norm_below_the_limit_changes_nothing():
    a = tt.tensor([0.0, 0.0], dtype=np.float64, requires_grad=True)
    a.grad = np.array([0.3, 0.4])
    assert optim.clip_grad_norm([a], max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])
    assert optim.clip_grad_norm([tt.tensor([1.0], requires_grad=True)], 1.0) == 0.0


def test_bad_hyperparameters_are_rejected():
    w, _ = make_params()
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([w], lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        optim.AdamW([w], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.AdamW([])


def test_a_training_loop_lowers_a_loss():
    tt.manual_seed(0)
    from tinytensor import nn
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    x = tt.tensor(np.random.default_rng(0).standard_normal((32, 2)))
    y = tt.tensor((x.data[:, :1] * x.data[:, 1:] > 0).astype(np.float32))
    opt = optim.AdamW(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
