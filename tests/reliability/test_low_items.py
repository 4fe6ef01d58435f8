"""The Low items of issue 26: small misuses that must end in one clear error (or just work)."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F


# ----- tt.Function.backward returning a Tensor -----

def test_function_backward_returning_a_tensor_is_refused_at_once():
    class Double(tt.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return tt.tensor(grad * 2)                    # a Tensor, not an array
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="Double.backward.*Tensor.*array"):
        Double.apply(x).sum().backward()
