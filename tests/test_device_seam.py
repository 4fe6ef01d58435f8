"""The device seam, proved on the CPU: a fake "cupy" whose arrays are a NumPy subclass stands in for the GPU.

``FakeDeviceArray`` keeps its class through ufuncs, reductions and indexing (0-d results stay arrays, as in
CuPy), and, like CuPy, refuses to mix with plain NumPy arrays in one operation. So any bare ``np.`` on tensor
data either raises here or leaves a plain ``numpy.ndarray`` behind, which the checks below catch: every
output, gradient, parameter and optimizer moment of a "cuda" tensor must still be a FakeDeviceArray, and
every value must equal the CPU's.

``OP_CASES`` (one entry per op family) is shared with ``tests/gpu/test_gpu.py``, which runs it on a real GPU.
"""
import subprocess
import sys
import types

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend, nn, optim
from tinytensor.cuda import kernels as cuda_kernels

# ----- the fake device -----


class FakeDeviceArray(np.ndarray):
    """A NumPy array that pretends to live on a GPU: stays itself through every op, ``.get()`` to the host."""

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return arr.view(FakeDeviceArray)          # 0-d results stay arrays, like CuPy's

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _reject_host(f"{ufunc.__name__}.{method}", inputs[:1] + inputs[2:] if method == "at" else inputs)
        if out is not None:
            _reject_host(ufunc.__name__, out)
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        if func.__name__ not in ("split", "array_split"):     # split takes host index arrays, as CuPy's does
            _reject_host(func.__name__, args, kwargs)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getitem__(self, index):
        return _wrap(super().__getitem__(index))

    def get(self):
        """A host copy (CuPy's ``ndarray.get``)."""
        return np.array(self.view(np.ndarray))


def _is_host(a):
    return type(a) is np.ndarray


def _reject_host(name, args, kwargs=None):
    items = list(args) + list((kwargs or {}).values())
    while items:
        a = items.pop()
        if isinstance(a, (list, tuple)):
            items.extend(a)
        elif _is_host(a):
            raise TypeError(f"fake cupy: {name} got a host numpy array of shape {a.shape} next to device "
                            "arrays (CuPy refuses this; move it with cupy.asarray)")


def _unwrap(x):
    if isinstance(x, FakeDeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return x if type(x) is FakeDeviceArray else x.view(FakeDeviceArray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(FakeDeviceArray)
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


class _FakeUfunc:
    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        _reject_host(self.__name__, args, kwargs)
        return _wrap(self._uf(*_unwrap(args), **_unwrap(kwargs)))

    def at(self, a, index, b=None):
        _reject_host(self.__name__ + ".at", (a, b))
        self._uf.at(_unwrap(a), _unwrap(index), _unwrap(b))

    def __getattr__(self, name):            # reduce, accumulate, outer...
        method = getattr(self._uf, name)
        return lambda *a, **k: (_reject_host(f"{self.__name__}.{name}", a, k), _wrap(method(*_unwrap(a), **_unwrap(k))))[1]


class FakeCupy(types.ModuleType):
    """The parts of cupy that tinytensor may use, delegating to NumPy and returning FakeDeviceArrays."""

    ndarray = FakeDeviceArray

    def __init__(self):
        super().__init__("fake_cupy")
        self.seeds = []
        self.random = types.SimpleNamespace(seed=self.seeds.append)
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))

    def get_array_module(self, *args):
        return self if any(isinstance(a, FakeDeviceArray) for a in args) else np

    def asarray(self, a, dtype=None, order=None):
        if isinstance(a, FakeDeviceArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        return np.array(a, dtype=dtype, order=order or "K").view(FakeDeviceArray)   # host -> device: a copy

    array = asarray

    def asnumpy(self, a):
        return a.get() if isinstance(a, FakeDeviceArray) else np.asarray(a)

    def __getattr__(self, name):
        thing = getattr(np, name)
        if isinstance(thing, np.ufunc):
            return _FakeUfunc(thing)
        if callable(thing) and not isinstance(thing, type):
            def fn(*args, **kwargs):
                _reject_host(name, args[:1] if name in ("split", "array_split") else args, kwargs)
                return _wrap(thing(*_unwrap(args), **_unwrap(kwargs)))
            fn.__name__ = name
            return fn
        return thing


@pytest.fixture
def fake_cuda(monkeypatch):
    """Install the fake cupy as tinytensor's CuPy for one test."""
    fake = FakeCupy()
    monkeypatch.setattr(backend, "_cupy", fake)
    return fake


def on_device(a):
    return type(a) is FakeDeviceArray


def host(a):
    return backend.to_numpy(a)


# ----- the op families: (name, fn(*tensors), input shapes, kind of input values) -----

def _pos(shape, rng):
    return rng.uniform(0.5, 2.0, shape)


def _any(shape, rng):
    return rng.standard_normal(shape)


_IDS = np.array([[1, 3, 3], [0, 5, 1]])
_TARGETS = np.array([[2, 0, 4], [4, -100, 1]])

OP_CASES = [
    ("add_broadcast", lambda a, b: a + b, [(3, 4), (4,)], _any),
    ("sub", lambda a, b: a - b, [(2, 3), (2, 1)], _any),
    ("mul_scalar", lambda a, b: a * b * 2.0, [(3,), (2, 3)], _any),
    ("div", lambda a, b: a / b, [(2, 3), (3,)], _pos),
    ("pow_tensor", lambda a, b: a ** b, [(2, 3), (2, 3)], _pos),
    ("pow_const", lambda a: a ** 3 - (-a), [(4,)], _any),
    ("unary", lambda a: a.exp() + a.log() + a.tanh() + a.sqrt() + a.relu() + a.sigmoid() + abs(a - 1.0),
     [(2, 3)], _pos),
    ("where_masked_fill", lambda a, b: tt.where(a > 0, a, b).masked_fill(b < 0, 0.5), [(3, 4), (3, 4)], _any),
    ("sum_mean", lambda a: a.sum(axis=0) * a.mean(axis=(0, 1), keepdims=True) + a.sum(), [(3, 4, 2)], _any),
    ("max_min", lambda a: a.max(axis=1) + a.min() + a.max(), [(3, 4)], _any),
    ("var", lambda a: a.var(axis=-1), [(3, 5)], _any),
    ("reshape_transpose", lambda a: a.reshape(4, 6).T.transpose(1, 0).swapaxes(0, 1).unsqueeze(0).squeeze(0)
     .flatten(), [(2, 3, 4)], _any),
    ("concat_stack_split", lambda a, b: tt.stack([tt.concatenate([a, b], axis=1).split(2, axis=1)[1], a], 0),
     [(2, 2), (2, 3)], _any),
    ("index", lambda a: a[1:, ::2] .sum() + a[[0, 2, 0]].sum() + a[np.array([1, 1])].sum() + a[a > 0].sum()
     + a[tt.tensor([2, 0])].sum(), [(3, 4)], _any),
    ("matmul", lambda a, b, c: (a @ b) @ c + (a[0, 0] @ a[1, 1]), [(2, 3, 4), (4, 5), (5,)], _any),
    ("matmul_batched", lambda a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)], _any),
    ("softmax", lambda a: F.softmax(a, axis=-1) * F.log_softmax(a, axis=0), [(3, 5)], _any),
    ("cross_entropy_mean", lambda a: F.cross_entropy(a, _TARGETS), [(2, 3, 6)], _any),
    ("cross_entropy_sum_none", lambda a: F.cross_entropy(a, _TARGETS.reshape(-1), reduction="sum")
     + F.cross_entropy(a, _TARGETS.reshape(-1), reduction="none").sum(), [(6, 6)], _any),
    ("gelu", lambda a: F.gelu(a), [(3, 7)], _any),
    ("layer_norm", lambda a, w, b: F.layer_norm(a, w, b) + F.layer_norm(a), [(2, 3, 8), (8,), (8,)], _any),
    ("linear", lambda a, w, b: F.linear(a, w, b), [(2, 3, 4), (5, 4), (5,)], _any),
    ("embedding", lambda w: F.embedding(_IDS, w), [(6, 4)], _any),
    ("attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True), [(2, 2, 3, 4)] * 3, _any),
    ("attention_kv", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
     [(1, 2, 2, 4), (1, 2, 5, 4), (1, 2, 5, 4)], _any),
    ("attention_grouped", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
     [(1, 4, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)], _any),
]

# run with a fixed seed on each device, so the host-drawn masks are the same
RANDOM_CASES = [
    ("dropout", lambda a: F.dropout(a, 0.3, True), [(4, 5)], _any),
    ("attention_dropout", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.2, training=True),
     [(1, 2, 3, 4)] * 3, _any),
]


def run_case(case, device, dtype=np.float64, seed=0):
    """(output, [input grads]) as host arrays, and the raw device arrays for type checks."""
    name, fn, shapes, kind = case
    rng = np.random.default_rng(seed)
    values = [kind(s, rng) for s in shapes]
    inputs = [tt.tensor(v, dtype=dtype, requires_grad=True, device=device) for v in values]
    tt.manual_seed(seed)
    out = fn(*inputs)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(tt.tensor(g, dtype=dtype, device=device))
    return out, inputs


@pytest.mark.parametrize("case", OP_CASES + RANDOM_CASES, ids=lambda c: c[0])
def test_every_op_family_stays_on_the_device_and_matches_the_cpu(fake_cuda, case):
    out_c, ins_c = run_case(case, "cpu")
    out_d, ins_d = run_case(case, "cuda")
    assert out_d.device == "cuda" and on_device(out_d.data), type(out_d.data)
    assert out_d.dtype == out_c.dtype == np.float64
    np.testing.assert_allclose(host(out_d.data), out_c.data, rtol=1e-12, atol=1e-12)
    for i, (a, b) in enumerate(zip(ins_c, ins_d)):
        assert on_device(b.grad), f"input {i}: grad is {type(b.grad)}"
        assert b.grad.dtype == np.float64 and b.grad.shape == b.shape
        np.testing.assert_allclose(host(b.grad), a.grad, rtol=1e-12, atol=1e-12, err_msg=f"input {i}")


def test_float32_stays_float32_on_the_device(fake_cuda):
    x = tt.tensor(np.linspace(-2, 2, 12).reshape(3, 4), requires_grad=True, device="cuda")
    y = (F.gelu(x) * 2 + 1).sum()
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and on_device(x.grad)


def test_mixing_devices_in_one_op_raises_a_clear_error(fake_cuda):
    a = tt.tensor(np.ones((2, 4)))
    b = tt.tensor(np.ones((2, 4)), device="cuda")
    w, bias = tt.tensor(np.ones((3, 4)), device="cuda"), tt.tensor(np.ones(3))
    q = tt.tensor(np.ones((1, 1, 2, 4)))
    for fn in (lambda: a + b, lambda: b * a, lambda: a @ b.T, lambda: tt.concatenate([a, b]),
               lambda: tt.where(b > 0, a, b), lambda: F.linear(a, w), lambda: F.linear(b, w, bias),
               lambda: F.layer_norm(b, tt.ones(4), tt.zeros(4)),
               lambda: F.scaled_dot_product_attention(q, q.to("cuda"), q.to("cuda")),
               lambda: a[tt.tensor([0], device="cuda")]):
        with pytest.raises(RuntimeError, match="device|on cpu, weight on cuda"):
            fn()


def test_to_and_numpy_move_data_and_gradients(fake_cuda):
    x = tt.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    xd = x.to("cuda")
    assert xd.device == "cuda" and on_device(xd.data) and x.device == "cpu"
    host_copy = xd.numpy()
    assert type(host_copy) is np.ndarray and host_copy.dtype == np.float32
    np.testing.assert_array_equal(host_copy, x.data)
    back = (xd * xd).to("cpu")
    assert type(back.data) is np.ndarray
    back.sum().backward()
    assert type(x.grad) is np.ndarray                       # the gradient came home through .to()
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    t = tt.tensor(np.arange(3.0), device="cuda")
    assert on_device(t.data) and "device='cuda'" in repr(t) and t.tolist() == [0.0, 1.0, 2.0]
    assert t.sum().item() == 3.0 and isinstance(t.sum().item(), float)
    for made in (tt.zeros(2, 3, device="cuda"), tt.ones(2, device="cuda"), tt.randn(2, device="cuda"),
                 tt.rand(2, device="cuda"), tt.arange(4, device="cuda"), tt.full((2,), 3.0, device="cuda"),
                 tt.zeros_like(t), tt.ones_like(t)):
        assert made.device == "cuda" and on_device(made.data)


def _model():
    tt.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Dropout(0.2), nn.Linear(8, 3))


@pytest.mark.parametrize("make_opt", [lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
                                      lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)],
                         ids=["adamw", "sgd"])
def test_module_to_and_optimizer_steps_keep_everything_on_the_device(fake_cuda, make_opt):
    cpu, dev = _model(), _model().to("cuda")
    assert all(on_device(p.data) for p in dev.parameters())
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0])
    opts = [make_opt(cpu.parameters()), make_opt(dev.parameters())]
    for step in range(3):
        losses = []
        for model, opt, device in ((cpu, opts[0], "cpu"), (dev, opts[1], "cuda")):
            tt.manual_seed(100 + step)                          # the same dropout masks on both
            loss = F.cross_entropy(model(tt.tensor(x, device=device)), y)
            loss.backward()
            if device == "cuda":
                assert all(on_device(p.grad) for p in model.parameters())
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
    for (name, a), b in zip(cpu.named_parameters(), dev.parameters()):
        assert on_device(b.data), name
        np.testing.assert_allclose(host(b.data), a.data, rtol=1e-5, atol=1e-6, err_msg=name)
    for state in opts[1].state.values():
        assert all(on_device(v) for v in state.values() if hasattr(v, "shape"))
    saved = opts[1].state_dict()
    assert all(type(v) is np.ndarray for s in saved["state"].values() for v in s.values() if hasattr(v, "shape"))
    opts[1].load_state_dict(saved)
    assert all(on_device(v) for s in opts[1].state.values() for v in s.values() if hasattr(v, "shape"))
    sd = dev.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    dev.load_state_dict(sd)
    assert all(on_device(p.data) for p in dev.parameters())
    dev.to("cpu")
    assert all(type(p.data) is np.ndarray for p in dev.parameters())


def test_clip_grad_norm_on_the_device(fake_cuda):
    p = nn.Parameter(np.ones(4, np.float32), device="cuda")
    (p * p * 10.0).sum().backward()
    norm = optim.clip_grad_norm([p], 1.0)
    assert norm == pytest.approx(40.0) and on_device(p.grad)
    np.testing.assert_allclose(host(p.grad), np.full(4, 0.5), rtol=1e-5)


def test_save_from_the_device_and_load_onto_it(fake_cuda, tmp_path):
    a = tt.tensor(np.arange(6.0).reshape(2, 3), device="cuda")
    tt.save({"a": a, "b": a.data * 2, "c": np.ones(2, np.int64)}, tmp_path / "x.safetensors")
    on_host = tt.load(tmp_path / "x.safetensors")
    assert all(type(v) is np.ndarray for v in on_host.values())
    loaded = tt.load(tmp_path / "x.safetensors", device="cuda")
    assert all(on_device(v) for v in loaded.values())
    np.testing.assert_array_equal(host(loaded["b"]), 2 * a.numpy())
    assert loaded["c"].dtype == np.int64


def test_manual_seed_seeds_cupy_too(fake_cuda):
    tt.manual_seed(1234)
    assert fake_cuda.seeds == [1234]


def test_set_tf32_is_a_no_op_without_cupy(fake_cuda, monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "0")
    tt.set_tf32(True)
    assert backend.tf32_enabled()
    tt.set_tf32(False)
    assert not backend.tf32_enabled()
    x = tt.tensor(np.ones((2, 2)), device="cuda")
    assert on_device((x @ x).data)


def test_fused_kernels_are_never_used_off_a_real_gpu(fake_cuda):
    assert not cuda_kernels.use(np, "gelu")
    assert not cuda_kernels.use(fake_cuda, "gelu")


def _gpt_cfg():
    import gpt
    return gpt.GPTConfig(vocab_size=40, context_length=12, emb_dim=16, n_layers=2, n_heads=2, drop_rate=0.1,
                         qkv_bias=True)


def _gpt_step(model, opt, device, ids, targets, seed):
    tt.manual_seed(seed)
    logits = model(ids)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    opt.step()
    opt.zero_grad()
    return loss.item(), logits, grads


def test_a_gpt_training_step_on_the_device_matches_the_cpu(fake_cuda):
    import gpt
    cfg = _gpt_cfg()
    tt.manual_seed(0)
    cpu = gpt.GPT(cfg)
    tt.manual_seed(0)
    dev = gpt.GPT(cfg).to("cuda")
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 40, (2, 12)), rng.integers(0, 40, (2, 12))
    decay = lambda m: [{"params": [p for n, p in m.named_parameters() if p.ndim >= 2], "weight_decay": 0.1},
                       {"params": [p for n, p in m.named_parameters() if p.ndim < 2], "weight_decay": 0.0}]
    opt_c, opt_d = optim.AdamW(decay(cpu), lr=1e-3), optim.AdamW(decay(dev), lr=1e-3)
    for step in range(2):
        loss_c, _, _ = _gpt_step(cpu, opt_c, "cpu", ids, targets, 10 + step)
        loss_d, logits, grads = _gpt_step(dev, opt_d, "cuda", ids, targets, 10 + step)
        assert on_device(logits.data)
        bad = [n for n, g in grads.items() if not on_device(g)]
        assert not bad, f"gradients left the device: {bad}"
        assert loss_d == pytest.approx(loss_c, rel=1e-5)
    for (name, a), b in zip(cpu.named_parameters(), dev.parameters()):
        assert on_device(b.data), name
        np.testing.assert_allclose(host(b.data), a.data, rtol=1e-4, atol=1e-6, err_msg=name)
    moments = [v for s in opt_d.state.values() for v in s.values() if hasattr(v, "shape")]
    assert len(moments) == 2 * len(dev.parameters()) and all(on_device(m) for m in moments)


def test_generation_with_a_kv_cache_on_the_device(fake_cuda):
    import gpt
    tt.manual_seed(0)
    cpu = gpt.GPT(_gpt_cfg())
    tt.manual_seed(0)
    dev = gpt.GPT(_gpt_cfg()).to("cuda")
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    want = gpt.generate(cpu, prompt, max_new_tokens=5)
    got = gpt.generate(dev, prompt, max_new_tokens=5, use_cache=True)
    np.testing.assert_array_equal(got, want)
    cache = dev.new_cache(2)
    assert all(on_device(k) for k in cache.keys + cache.values)
    sampled = [gpt.generate(m, prompt, max_new_tokens=4, temperature=1.0, top_k=5, seed=7) for m in (cpu, dev)]
    np.testing.assert_array_equal(sampled[0], sampled[1])


def test_importing_tinytensor_never_imports_cupy():
    code = ("import sys, tinytensor as tt, tinytensor.cuda.kernels, tinytensor.cuda.blas, tinytensor.functional, gpt\n"
            "x = tt.tensor([1.0, 2.0], requires_grad=True); (x * x).sum().backward()\n"
            "tt.set_tf32(True); tt.set_tf32(False)\n"
            "assert 'cupy' not in sys.modules, 'cupy was imported'\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
