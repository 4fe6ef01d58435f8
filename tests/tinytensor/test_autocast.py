"""tt.autocast and tt.GradScaler on the CPU with float16: which op runs in which dtype, float32 gradients on
the float32 parameters, the scaler's skip-and-back-off rule, and a tiny GPT training like float32."""
import importlib
import threading

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import amp, nn, optim

engine = importlib.import_module("tinytensor.tensor")

F16, F32 = np.dtype(np.float16), np.dtype(np.float32)


def _tiny_gpt(drop=0.0, seed=0):
    import gpt
    tt.manual_seed(seed)
    return gpt.GPT(gpt.GPTConfig(vocab_size=61, context_length=16, emb_dim=32, n_layers=2, n_heads=4,
                                 drop_rate=drop, qkv_bias=True))


class OpLog:
    """Every op made while active: (op name, result dtype, input dtypes)."""

    def __init__(self):
        self.rows = []

    def __enter__(self):
        engine._hooks.append(self._hook)
        return self

    def __exit__(self, *exc):
        engine._hooks.remove(self._hook)

    def _hook(self, out, op, parents):
        self.rows.append((op, out.dtype, tuple(p.dtype for p in parents)))

    def of(self, op):
        return [(out, ins) for name, out, ins in self.rows if name == op]


def test_each_op_runs_in_its_dtype_under_float16_autocast():
    model = _tiny_gpt()
    ids = np.random.default_rng(0).integers(0, 61, (2, 16))
    with OpLog() as log, tt.autocast(dtype="float16"):
        logits = model(ids)
        loss = F.cross_entropy(logits, ids)
    assert logits.dtype == F16 and loss.dtype == F32
    linears = log.of("linear")
    assert len(linears) == 2 * 4 + 1                      # qkv, proj, fc, proj per block, and the head
    assert all(out == F16 and set(ins) == {F16} for out, ins in linears)
    assert all(out == F32 and set(ins) == {F32} for out, ins in log.of("layer_norm"))
    assert [(out, ins) for out, ins in log.of("cross_entropy")] == [(F32, (F32,))]
    attention = log.of("scaled_dot_product_attention")     # the softmax's op runs on float32 inputs...
    assert len(attention) == 2 and all(out == F32 and set(ins) == {F32} for out, ins in attention)
    assert all(out == F16 and ins == (F16,) for out, ins in log.of("gelu"))
    casts = log.of("autocast_cast")                        # ...and its result is handed on in float16
    assert (F16, (F32,)) in casts and (F32, (F16,)) in casts
    assert all(out == F32 for out, _ in log.of("add"))     # the residual stream stays float32


def test_gradients_reach_the_float32_parameters_in_float32():
    model = _tiny_gpt(drop=0.1)
    ids = np.random.default_rng(1).integers(0, 61, (2, 16))
    with tt.autocast(dtype="float16"):
        loss = F.cross_entropy(model(ids), ids)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == F32 and p.grad is not None and p.grad.dtype == F32, name
        assert np.isfinite(p.grad).all(), name


def test_autocast_gradients_are_close_to_float32():
    rng = np.random.default_rng(2)
    x0, w0, b0 = rng.standard_normal((8, 24)), rng.standard_normal((16, 24)) * 0.2, rng.standard_normal(16)
    grads = []
    for on in (False, True):
        x, w, b = (tt.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        with tt.autocast(dtype="float16", enabled=on):
            y = F.layer_norm(F.gelu(F.linear(x, w, b)), None, None)
            loss = F.cross_entropy(y, np.arange(8) % 16)
        loss.backward()
        grads.append((loss.item(), x.grad, w.grad, b.grad))
    (l32, *g32), (l16, *g16) = grads
    assert l16 == pytest.approx(l32, rel=2e-3)
    for a, b in zip(g32, g16):
        assert b.dtype == F32
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=2e-3)


def test_attention_under_autocast_is_float16_out_with_a_float32_softmax():
    rng = np.random.default_rng(3)
    q, k, v = (tt.tensor(rng.standard_normal((1, 2, 6, 8)) * 30, requires_grad=True) for _ in range(3))
    with tt.autocast(dtype="float16"):
        out = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == F16 and np.isfinite(out.numpy()).all()     # scores near 1e3: no float16 overflow
    want = F.scaled_dot_product_attention(*(tt.tensor(t.numpy().astype(F16).astype(F32)) for t in (q, k, v)))
    np.testing.assert_allclose(out.numpy().astype(F32), want.numpy(), rtol=2e-3, atol=2e-3)
    out.sum().backward()
    assert q.grad.dtype == F32 and np.isfinite(q.grad).all()


def test_outside_autocast_nothing_changes_and_mixing_still_refused():
    x = tt.tensor(np.ones((2, 3)))
    assert F.linear(x, tt.tensor(np.ones((4, 3)))).dtype == F32
    with tt.autocast(dtype="float16", enabled=False):
        assert F.linear(x, tt.tensor(np.ones((4, 3)))).dtype == F32
    with pytest.raises(TypeError, match="mixing"):
        x + tt.tensor(np.ones((2, 3)), dtype=np.float16)
    with tt.autocast(dtype="float16"):
        assert (x + tt.tensor(np.ones((2, 3)), dtype=np.float16)).dtype == F32
        with tt.autocast(dtype="float16", enabled=False):    # nested: off inside
            assert F.linear(x, tt.tensor(np.ones((4, 3)))).dtype == F32
        assert F.linear(x, tt.tensor(np.ones((4, 3)))).dtype == F16
        d = tt.tensor(np.ones((2, 3)), dtype=np.float64)
        assert F.linear(d, tt.tensor(np.ones((4, 3)), dtype=np.float64)).dtype == np.float64   # gradcheck's dtype
    assert amp.current() is None


def test_autocast_is_per_thread():
    seen = []
    with tt.autocast(dtype="float16"):
        t = threading.Thread(target=lambda: seen.append(amp.current()))
        t.start()
        t.join()
        assert amp.current() == "float16"
    assert seen == [None]


def test_bfloat16_on_the_cpu_and_bad_names_are_clear_errors():
    x = tt.tensor(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="NumPy has no bfloat16.*float16"):
        with tt.autocast(dtype="bfloat16"):
            F.linear(x, tt.tensor(np.ones((4, 3))))
    with pytest.raises(ValueError, match="'bfloat16' or 'float16'"):
        tt.autocast(dtype="float64")
    assert tt.autocast(dtype=np.float16).dtype == "float16"


# ----- GradScaler -----

def _linear_model(seed=0):
    tt.manual_seed(seed)
    return nn.Linear(4, 3)


def test_scaler_scales_the_loss_and_unscales_the_gradients():
    model = _linear_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tt.tensor(np.arange(8.0).reshape(2, 4))
    F.linear(x, model.weight, model.bias).sum().backward()
    want = [p.grad.copy() for p in model.parameters()]
    opt.zero_grad()
    scaler = tt.GradScaler(init_scale=1024.0)
    loss = F.linear(x, model.weight, model.bias).sum()
    scaled = scaler.scale(loss)
    assert scaled.item() == pytest.approx(1024 * loss.item())
    scaled.backward()
    assert np.allclose(model.weight.grad, 1024 * want[0])
    scaler.unscale_(opt)
    for p, g in zip(model.parameters(), want):
        np.testing.assert_allclose(p.grad, g, rtol=1e-6)
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_(opt)
    before = model.weight.numpy().copy()
    assert scaler.step(opt) is True
    assert not np.array_equal(model.weight.numpy(), before)
    scaler.update()
    assert scaler.get_scale() == 1024.0


def test_scaler_skips_an_overflowing_step_and_lowers_the_scale_then_grows_it():
    model = _linear_model()
    opt = optim.AdamW(model.parameters(), lr=0.1)
    scaler = tt.GradScaler(init_scale=2.0 ** 14, growth_interval=2)
    x = tt.tensor(np.ones((2, 4)))
    with tt.autocast(dtype="float16"):
        loss = (F.linear(x, model.weight, model.bias) * 1000.0).sum()   # its float16 gradients overflow
    with np.errstate(over="ignore"):
        scaler.scale(loss).backward()
    weights = [p.numpy().copy() for p in model.parameters()]
    assert scaler.step(opt) is False and scaler.found_inf(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 13
    assert all(np.array_equal(p.numpy(), w) for p, w in zip(model.parameters(), weights))
    assert opt.state == {}                                           # AdamW never saw the step
    for _ in range(2):                                               # two good steps: the scale doubles
        opt.zero_grad()
        with tt.autocast(dtype="float16"):
            loss = F.linear(x, model.weight, model.bias).sum()
        scaler.scale(loss).backward()
        assert scaler.step(opt) is True
        scaler.update()
    assert scaler.get_scale() == 2.0 ** 14
    state = scaler.state_dict()
    other = tt.GradScaler()
    other.load_state_dict(state)
    assert other.state_dict() == state
    with pytest.raises(ValueError, match="scale"):
        other.load_state_dict({"scale": float("nan")})


def test_a_disabled_scaler_passes_everything_through():
    model = _linear_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    scaler = tt.GradScaler(enabled=False)
    loss = F.linear(tt.tensor(np.ones((1, 4))), model.weight, model.bias).sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0
    loss.backward()
    scaler.unscale_(opt)
    assert scaler.step(opt) is True
    scaler.update()


# ----- training -----

def train_tiny_gpt(dtype, steps=30, device="cpu"):
    """Losses of the tiny GPT learning a repeating sequence, under autocast ``dtype`` ("float32": none) with a
    GradScaler for float16; every gradient reaching a parameter is float32. (tests/gpu/test_gpu.py runs it too.)"""
    model = _tiny_gpt(seed=3).to(device)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    scaler = tt.GradScaler(init_scale=2.0 ** 12, enabled=dtype == "float16")
    text = np.tile(np.arange(20) * 3 % 61, 20)                      # a repeating sequence to learn
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, len(text) - 17, 4)
        x = np.stack([text[s:s + 16] for s in starts])
        y = np.stack([text[s + 1:s + 17] for s in starts])
        with tt.autocast(dtype=dtype if dtype != "float32" else "float16", enabled=dtype != "float32"):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        assert all(p.grad.dtype == F32 for p in model.parameters())
        scaler.unscale_(opt)
        optim.clip_grad_norm(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_tiny_gpt_trains_under_float16_autocast_like_float32():
    l32, l16 = train_tiny_gpt("float32"), train_tiny_gpt("float16")
    assert l32[-1] < 0.5 * l32[0]                                     # it learned
    assert abs(np.mean(l16[-5:]) - np.mean(l32[-5:])) < 0.03 * np.mean(l32[-5:])
