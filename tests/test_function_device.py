"""A tt.Function runs on the device of its inputs: ``ctx.xp`` is the device's array module, and the result and
the gradients stay on the device (the fake CuPy of test_device_seam.py stands in for a GPU)."""
import numpy as np

import tinytensor as tt
from test_device_seam import fake_cuda, host, on_device  # noqa: F401 (fake_cuda: the fixture)


class Hypot(tt.Function):
    @staticmethod
    def forward(ctx, a, b):
        out = ctx.xp.sqrt(a * a + b * b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        return g * a / out, g * b / out              # broadcast shapes: summed back on the device


def test_a_function_stays_on_the_device_and_matches_the_cpu(fake_cuda):
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 2.0, (2, 3)), rng.standard_normal((3,))
    results = {}
    for device in ("cpu", "cuda"):
        a, b = (tt.tensor(v, dtype="float64", requires_grad=True, device=device) for v in values)
        out = Hypot.apply(a, b)
        (out * out).sum().backward()
        if device == "cuda":
            assert on_device(out.data) and on_device(a.grad) and on_device(b.grad)
        results[device] = [host(x) for x in (out.data, a.grad, b.grad)]
    for cpu, dev in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(dev, cpu, rtol=1e-12)
