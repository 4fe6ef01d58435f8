"""Gradients of gradients: ``backward(create_graph=True)``, ``tt.grad``, ``tt.jvp`` and the checkers.

Hessians of small functions against their analytic form, second derivatives of the GPT's ops against
finite differences, PyTorch's semantics of retain_graph / create_graph / allow_unused, and the graph
freed after use.
"""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst


def leaf(values):
    return tt.tensor(values, requires_grad=True, dtype="float64")


def hessian(fn, x):
    """Row i: the gradient of (d fn / d x_i), each from its own graph."""
    (g,) = tt.grad(fn(x), x, create_graph=True)
    g = g.reshape(-1)
    rows = [tt.grad(g[i], x, retain_graph=True, allow_unused=True)[0] for i in range(g.shape[0])]
    return np.stack([np.zeros(x.size) if r is None else r.numpy().reshape(-1) for r in rows])


# ----- derivatives of every order against their analytic form -----

def test_third_derivative_of_a_cube_by_tt_grad():
    x = leaf(2.0)
    (d1,) = tt.grad(x ** 3, x, create_graph=True)
    (d2,) = tt.grad(d1, x, create_graph=True)
    (d3,) = tt.grad(d2, x)
    assert (d1.item(), d2.item(), d3.item()) == (12.0, 12.0, 6.0)        # 3x^2, 6x, 6


def test_backward_create_graph_leaves_a_differentiable_grad_in_the_dezero_style():
    x = leaf(0.7)
    y = x.tanh()
    y.backward(create_graph=True)
    gx = x.grad                                    # 1 - tanh^2, a Tensor with a graph
    assert isinstance(gx, tt.Tensor) and gx.requires_grad
    x.grad = None
    gx.backward()
    t = np.tanh(0.7)
    assert np.isclose(x.grad, -2 * t * (1 - t * t), rtol=1e-12)


def test_hessian_of_a_quadratic_form_is_a_plus_a_transposed():
    A = np.random.default_rng(0).standard_normal((4, 4))
    x = leaf(np.random.default_rng(1).standard_normal(4))
    H = hessian(lambda x: x @ (tt.tensor(A, dtype="float64") @ x), x)
    assert np.allclose(H, A + A.T, rtol=1e-12, atol=1e-12)


def test_hessian_of_log_sum_exp_is_diag_p_minus_p_p_transposed():
    z = np.array([0.3, -1.2, 2.0])
    x = leaf(z)
    H = hessian(lambda x: x.exp().sum().log(), x)
    p = np.exp(z) / np.exp(z).sum()
    assert np.allclose(H, np.diag(p) - np.outer(p, p), rtol=1e-10, atol=1e-12)


def test_hessian_of_an_mlp_loss_through_fused_ops_matches_the_twins():
    rng = np.random.default_rng(2)
    x, w = tt.tensor(rng.standard_normal((3, 4)), dtype="float64"), leaf(rng.standard_normal((5, 4)))
    targets = np.array([0, 4, 2])

    def loss(w):
        return F.cross_entropy(F.layer_norm(F.gelu(F.linear(x, w))), targets)
    fused = hessian(loss, w)
    with tt.reference_ops():
        twin = hessian(loss, w)
    assert np.allclose(fused, twin, rtol=1e-9, atol=1e-12)
    assert np.allclose(fused, fused.T, atol=1e-12)                    # a Hessian is symmetric


def test_gelu_second_derivative_matches_the_analytic_form():
    z = np.linspace(-3, 3, 7)
    x = leaf(z)
    (d1,) = tt.grad(F.gelu(x).sum(), x, create_graph=True)
    (d2,) = tt.grad(d1.sum(), x)
    c, a = np.sqrt(2 / np.pi), 0.044715
    u = c * (z + a * z ** 3)
    t, du, ddu = np.tanh(u), c * (1 + 3 * a * z ** 2), c * 6 * a * z
    s2 = 1 - t * t                               # sech^2 u; d/dx: -2 t sech^2 u du
    expected = s2 * du + 0.5 * z * (-2 * t * s2 * du * du + s2 * ddu)
    assert np.allclose(d2.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["softmax", "layer_norm", "gelu", "cross_entropy", "attention"])
def test_second_derivatives_of_the_gpt_ops_against_finite_differences(name):
    rng = np.random.default_rng(4)
    x = leaf(rng.standard_normal((2, 2, 3, 4)) if name == "attention" else rng.standard_normal((3, 5)))
    fn = {"softmax": lambda x: F.softmax(x),
          "layer_norm": lambda x: F.layer_norm(x, x[0], None),
          "gelu": F.gelu,
          "cross_entropy": lambda x: F.cross_entropy(x, np.array([1, 0, 4])),
          "attention": lambda x: F.scaled_dot_product_attention(x, x * 0.5, x.exp())}[name]
    assert tt.gradgradcheck(fn, x, atol=1e-5)


# ----- tt.jvp and the fast gradcheck -----

@settings(max_examples=10)
@given(ttst.tensors(ttst.shapes(min_dims=1, max_size=8)), st.data())
def test_jvp_matches_a_finite_difference_along_the_tangent(x, data):
    (v,) = data.draw(ttst.tangents(x), label="v")
    fn = lambda x: F.softmax(x * x) * x.sum()            # noqa: E731
    out, jv = tt.jvp(fn, x, v)
    eps = 1e-6
    with tt.no_grad():
        numeric = (fn(x + eps * v).numpy() - fn(x - eps * v).numpy()) / (2 * eps)
    assert np.allclose(out.numpy(), fn(x).numpy())
    assert np.allclose(jv.numpy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["layer_norm", "cross_entropy", "attention", "linear", "embedding"])
def test_jvp_through_fused_ops_matches_a_finite_difference(name):
    rng = np.random.default_rng(7)
    fn, shapes = {"layer_norm": (lambda x: F.layer_norm(x), [(3, 5)]),
                  "cross_entropy": (lambda x: F.cross_entropy(x, np.array([1, 2, 0]), reduction="none"), [(3, 5)]),
                  "attention": (F.scaled_dot_product_attention, [(1, 2, 4, 3)] * 3),
                  "linear": (F.linear, [(3, 5), (4, 5), (4,)]),
                  "embedding": (lambda w: F.embedding(np.array([0, 2, 2]), w), [(3, 4)])}[name]
    xs = [leaf(rng.standard_normal(s)) for s in shapes]
    vs = [tt.tensor(rng.standard_normal(s), dtype="float64") for s in shapes]
    _, jv = tt.jvp(fn, xs, vs)
    eps = 1e-6
    with tt.no_grad():
        numeric = (fn(*[x + eps * v for x, v in zip(xs, vs)]).numpy()
                   - fn(*[x - eps * v for x, v in zip(xs, vs)]).numpy()) / (2 * eps)
    assert np.allclose(jv.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_jvp_of_two_inputs_adds_both_directions():
    a, b = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    va, vb = tt.tensor([1.0, 0.5], dtype="float64"), tt.tensor([-2.0, 1.0], dtype="float64")
    _, jv = tt.jvp(lambda a, b: a * b, (a, b), (va, vb))
    assert np.allclose(jv.numpy(), va.numpy() * b.numpy() + a.numpy() * vb.numpy())


def test_fast_gradcheck_of_a_768_by_3072_linear_layer():
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((4, 768)))
    w = leaf(rng.standard_normal((3072, 768)) * 0.02)
    b = leaf(np.zeros(3072))
    assert tt.gradcheck(F.linear, x, w, b, fast=True)


def wrong_square(x):                    # a backward off by a factor of 1.01: what gradcheck must catch
    def backward(g):
        return (g * 2.02 * x.data,)
    return tt.Tensor._make(x.data * x.data, (x,), backward, "wrong_square")


def wrong_cube(x):                      # first order right, the Tensor-op backward wrong: gradgradcheck's catch
    def backward(g):
        return (g * 3 * x.data ** 2,)
    return tt.Tensor._make(x.data ** 3, (x,), backward, "wrong_cube", vjp=lambda g: (g * 3 * x * x * 1.01,))


def test_fast_gradcheck_catches_a_wrong_backward():
    x = leaf(np.linspace(0.5, 2, 200))
    with pytest.raises(tt.GradcheckError, match="fast"):
        tt.gradcheck(wrong_square, x, fast=True)
    with pytest.raises(tt.GradcheckError):
        tt.gradcheck(wrong_square, x[:3].detach().requires_grad_())


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = leaf([0.5, 1.5])
    assert tt.gradcheck(wrong_cube, x)
    with pytest.raises(tt.GradcheckError):
        tt.gradgradcheck(wrong_cube, x)


# ----- PyTorch's semantics -----

def test_grad_touches_no_dot_grad_and_sums_several_outputs():
    x = leaf([1.0, 2.0])
    g = tt.grad([(x * x).sum(), (x * 3).sum()], x)[0]
    assert np.allclose(g.numpy(), [5.0, 7.0]) and x.grad is None


def test_grad_with_grad_outputs_is_a_vector_jacobian_product():
    x = leaf([1.0, 2.0, 3.0])
    (g,) = tt.grad(x * x, x, grad_outputs=tt.tensor([1.0, 0.0, 2.0], dtype="float64"))
    assert np.allclose(g.numpy(), [2.0, 0.0, 12.0])


def test_grad_of_an_unused_input_raises_or_gives_none():
    x, unused = leaf(1.0), leaf(2.0)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        tt.grad(x * 2, [x, unused])
    assert tt.grad(x * 2, [x, unused], allow_unused=True)[1] is None


def test_grad_refuses_outputs_or_inputs_without_grad():
    x = leaf(1.0)
    with pytest.raises(RuntimeError, match="output 0 does not require grad"):
        tt.grad(tt.tensor(1.0, dtype="float64") * 2, x)
    with pytest.raises(RuntimeError, match="needs a grad_output"):
        tt.grad(x * tt.tensor([1.0, 2.0], dtype="float64"), x)


def test_grad_through_an_intermediate_input_is_the_total_derivative():
    a = leaf(3.0)
    h = a * a
    y = h * a                                       # dy/dh = a = 3 (direct), dy/da = 3 a^2 = 27 (total)
    gh, ga = tt.grad(y, [h, a])
    assert (gh.item(), ga.item()) == (3.0, 27.0)


def test_retain_graph_defaults_to_create_graph():
    x = leaf(2.0)
    y = (x * x).exp()
    tt.grad(y, x, create_graph=True)
    tt.grad(y, x)                                   # the graph was kept ...
    with pytest.raises(RuntimeError, match="already freed"):
        tt.grad(y, x)                               # ... and freed by the plain pass
    z = (x * x).exp()
    tt.grad(z, x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="already freed"):
        tt.grad(z, x)


def test_no_grad_inside_the_function_is_a_constant_for_every_order():
    x = leaf(1.5)

    def f(x):
        with tt.no_grad():
            c = x * x                               # a constant: 2.25
        return c * x ** 3
    (d1,) = tt.grad(f(x), x, create_graph=True)
    (d2,) = tt.grad(d1, x)
    assert np.isclose(d1.item(), 2.25 * 3 * 1.5 ** 2) and np.isclose(d2.item(), 2.25 * 6 * 1.5)


def test_create_graph_records_even_inside_no_grad():
    x = leaf(1.5)
    y = x ** 3
    with tt.no_grad():
        (d1,) = tt.grad(y, x, create_graph=True)
    assert d1.requires_grad and np.isclose(tt.grad(d1, x)[0].item(), 9.0)


def test_create_graph_accumulates_into_dot_grad_like_backward():
    x = leaf(2.0)
    (x * x).backward(create_graph=True)
    (x * x * x).backward(create_graph=True)
    assert isinstance(x.grad, tt.Tensor) and x.grad.item() == 4.0 + 12.0


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_an_optimizer_steps_after_backward_with_create_graph(name):
    w, plain = leaf([1.0, -2.0]), leaf([1.0, -2.0])
    opt, ref = (getattr(tt.optim, name)([p], lr=0.1) for p in (w, plain))
    (w * w * w).sum().backward(create_graph=True)
    (plain * plain * plain).sum().backward()
    opt.step()
    ref.step()
    assert np.array_equal(w.data, plain.data)


def test_the_graph_is_freed_after_use():
    x = leaf(np.ones(1000))
    h = (x * 2).exp()
    ref = weakref.ref(h)
    y = (h * h).sum()
    del h
    y.backward()                                    # frees the graph: no node holds h any more
    gc.collect()
    assert ref() is None


def test_the_graph_of_create_graph_is_freed_when_its_gradients_go():
    x = leaf(np.ones(1000))
    h = F.softmax(x * 2)
    ref = weakref.ref(h)
    (g,) = tt.grad((h * h).sum(), x, create_graph=True)
    del h
    gc.collect()
    assert ref() is not None                        # the gradient's graph still reads h
    del g
    gc.collect()
    assert ref() is None


def test_a_function_without_a_tensor_backward_says_so_under_create_graph():
    class Square(tt.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return 2 * a * g
    x = leaf(3.0)
    assert tt.grad(Square.apply(x), x)[0].item() == 6.0          # first order: as before
    with pytest.raises(RuntimeError, match="'Square' has no backward in Tensor ops"):
        tt.grad(Square.apply(x), x, create_graph=True)


def test_attention_with_dropout_under_create_graph_says_so():
    q = leaf(np.ones((1, 1, 2, 2)))
    out = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5, training=True)
    with pytest.raises(RuntimeError, match="attention with dropout"):
        tt.grad(out.sum(), q, create_graph=True)


def test_trace_prints_a_create_graph_pass():
    x = leaf(2.0)
    with tt.trace(file=open(__import__("os").devnull, "w")):
        (x ** 3).backward(create_graph=True)
    assert x.grad.item() == 12.0


def test_second_derivative_through_autocast_casts():
    rng = np.random.default_rng(6)
    x, w = (tt.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 4), (5, 4)))

    def curvature(low):
        with tt.autocast(dtype="float16", enabled=low):
            loss = (F.linear(x, w).astype("float32") ** 2).sum()
        (g,) = tt.grad(loss, w, create_graph=True)
        return tt.grad((g * g).sum(), x)[0].numpy()
    low, full = curvature(True), curvature(False)
    assert np.abs(low - full).max() <= 1e-2 * np.abs(full).max()      # float16's precision, no more
