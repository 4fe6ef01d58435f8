"""The switch that runs the engine on the readable twins (tt.use_reference_ops / tt.reference_ops):
each fused op and AdamW's step then run their twin, with the same numbers, and a GPT trains the same."""
import numpy as np
import pytest

import gpt
import tinytensor as tt
import tinytensor.functional as F
from tinytensor import config, optim

from test_device_seam import fake_cuda  # noqa: F401  (a fixture)

FUSED = {"softmax", "log_softmax", "cross_entropy", "gelu", "layer_norm", "scaled_dot_product_attention",
         "linear", "embedding"}


def test_the_switch_returns_the_previous_setting_and_the_context_restores_it():
    assert config.reference_ops is False
    assert tt.use_reference_ops() is False and config.reference_ops is True
    assert tt.use_reference_ops(False) is True and config.reference_ops is False
    with pytest.raises(ZeroDivisionError):
        with tt.reference_ops():
            assert config.reference_ops is True
            1 / 0
    assert config.reference_ops is False


def _run(fn, arrays, reference):
    """fn's output and every input's gradient under one upstream gradient, and the ops its graph ran."""
    inputs = [tt.tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    with tt.reference_ops(reference), tt.op_counter() as ops:
        out = fn(*inputs)
        out.backward(np.random.default_rng(1).standard_normal(out.shape))
    return [out.data] + [x.grad for x in inputs], set(ops.counts)


def _cases():
    rng = np.random.default_rng(0)
    r = lambda *shape: rng.standard_normal(shape)        # noqa: E731
    targets = np.array([[1, 4, -100], [0, 2, 3]])
    return {
        "softmax": (lambda x: F.softmax(x, axis=1), [r(2, 3, 4)]),
        "log_softmax": (F.log_softmax, [r(2, 3, 4)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets), [r(2, 3, 5)]),
        "gelu": (F.gelu, [r(3, 5)]),
        "layer_norm": (F.layer_norm, [r(2, 3, 6), r(6), r(6)]),
        "scaled_dot_product_attention": (F.scaled_dot_product_attention, [r(2, 2, 5, 3), r(2, 2, 7, 3), r(2, 2, 7, 3)]),
        "dropout_attention": (lambda q, k, v: (tt.manual_seed(5), F.scaled_dot_product_attention(
            q, k, v, dropout_p=0.3))[1], [r(1, 2, 4, 3), r(1, 2, 4, 3), r(1, 2, 4, 3)]),
        "linear": (F.linear, [r(2, 3, 4), r(5, 4), r(5)]),
        "embedding": (lambda w: F.embedding(np.array([[0, 2, 2], [3, 1, 0]]), w), [r(4, 3)]),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_each_fused_op_runs_its_twin_under_the_switch_with_the_same_numbers(name):
    fn, arrays = _cases()[name]
    fused, fused_ops = _run(fn, arrays, reference=False)
    twin, twin_ops = _run(fn, arrays, reference=True)
    assert fused_ops & FUSED and not twin_ops & FUSED, (fused_ops, twin_ops)
    for a, b in zip(fused, twin):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_adamw_runs_the_twin_update_under_the_switch(monkeypatch):
    rng = np.random.default_rng(3)
    start, grads = rng.standard_normal((2, 5)), rng.standard_normal((4, 2, 5))
    results = []
    for reference in (False, True):
        p = tt.tensor(start, dtype=np.float64, requires_grad=True)
        q = tt.tensor(start[0], dtype=np.float64, requires_grad=True)
        opt = optim.AdamW([{"params": [p], "weight_decay": 0.1}, {"params": [q], "weight_decay": 0.0}],
                          lr=0.05, betas=(0.8, 0.95))
        with tt.reference_ops(reference):
            for g in grads:
                p.grad, q.grad = g.copy(), g[1].copy()
                opt.step()
        results.append((p.data, q.data, opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]))
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    called = []
    monkeypatch.setattr("tinytensor.twins.adamw_update", lambda *args: called.append(args))
    with tt.reference_ops():
        p.grad = grads[0]
        optim.AdamW([p]).step()
    assert len(called) == 1


def _train(reference, steps=3):
    """A tiny GPT (float64, dropout on) trained a few AdamW steps: the losses and every step's gradients."""
    cfg = gpt.GPTConfig(vocab_size=23, context_length=8, emb_dim=12, n_layers=2, n_heads=3, drop_rate=0.1,
                        qkv_bias=True)
    tt.manual_seed(0)
    model = gpt.GPT(cfg).to(np.float64)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    losses, grads = [], []
    with tt.reference_ops(reference), tt.op_counter() as ops:
        for step in range(steps):
            ids = rng.integers(0, cfg.vocab_size, (2, cfg.context_length))
            tt.manual_seed(100 + step)                              # the same dropout masks both ways
            loss = F.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
            loss.backward()
            losses.append(loss.item())
            grads.append({name: p.grad.copy() for name, p in model.named_parameters()})
            opt.step()
            opt.zero_grad()
    return losses, grads, set(ops.counts)


def test_a_gpt_trains_the_same_on_the_twins():
    losses, grads, ops = _train(reference=False)
    twin_losses, twin_grads, twin_ops = _train(reference=True)
    assert {"linear", "layer_norm", "scaled_dot_product_attention", "gelu", "cross_entropy"} <= ops
    assert not twin_ops & FUSED, twin_ops & FUSED             # a GPT made only of ops a learner has read
    np.testing.assert_allclose(twin_losses, losses, rtol=1e-10)
    assert losses[-1] != losses[0]
    for step, (a, b) in enumerate(zip(grads, twin_grads)):
        for name in a:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-8, atol=1e-12, err_msg=f"step {step}: {name}")


def test_the_twins_keep_a_gpt_training_step_on_the_device(fake_cuda):
    """The device-seam check (every output, gradient, parameter and moment stays a device array, equal to
    the CPU's) with the whole engine on its twins."""
    import test_device_seam
    with tt.reference_ops():
        test_device_seam.test_a_gpt_training_step_on_the_device_matches_the_cpu(fake_cuda)
