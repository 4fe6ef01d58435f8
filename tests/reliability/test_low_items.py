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


# ----- fused ops given integers, an empty axis, no positions -----

INTS = tt.tensor(np.arange(6).reshape(2, 3))
FLOAT_OPS = {"layer_norm": lambda x: F.layer_norm(x), "rms_norm": lambda x: F.rms_norm(x),
             "softmax": lambda x: F.softmax(x), "log_softmax": lambda x: F.log_softmax(x),
             "gelu": lambda x: F.gelu(x), "silu": lambda x: F.silu(x),
             "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 1])),
             "scaled_dot_product_attention": lambda x: F.scaled_dot_product_attention(*[x.reshape(1, 1, 2, 3)] * 3)}


@pytest.mark.parametrize("op", list(FLOAT_OPS))
def test_fused_ops_refuse_integer_input_in_one_line(op):
    with pytest.raises(TypeError, match=f"{op}: needs a floating-point tensor, got int64"):
        FLOAT_OPS[op](INTS)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_says_so(op):
    x = tt.tensor(np.zeros((3, 0), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=f"{op}: axis -1 has length 0"):
        getattr(F, op)(x, axis=-1)


def test_attention_with_no_positions_says_so():
    q = tt.tensor(np.zeros((1, 2, 0, 4), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="scaled_dot_product_attention: .*no positions"):
        F.scaled_dot_product_attention(q, q, q)


# ----- config.json oddities -----

def _qwen3(tmp_path, change):
    import json
    import shutil
    from pathlib import Path
    folder = tmp_path / "q"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "families" / "qwen3_tied", folder)
    c = json.loads((folder / "config.json").read_text())
    change(c)
    (folder / "config.json").write_text(json.dumps(c))
    return folder


def test_a_model_type_that_is_not_a_string_is_one_line(tmp_path):
    import gpt
    folder = _qwen3(tmp_path, lambda c: c.update(model_type=["qwen3"]))
    with pytest.raises(ValueError, match=r'model_type \["qwen3"\] is not one this code runs'):
        gpt.load_hf(folder)


def test_layer_types_of_the_wrong_length_are_refused(tmp_path):
    import gpt
    folder = _qwen3(tmp_path, lambda c: c.update(layer_types=["full_attention"] * (c["num_hidden_layers"] - 1)))
    with pytest.raises(ValueError, match="layer_types has .* entries for .* layers"):
        gpt.load_hf(folder)


# ----- from_tiktoken's list of special tokens -----

def test_from_tiktoken_refuses_a_special_token_named_twice(tmp_path):
    import base64

    import bpe
    path = tmp_path / "tokenizer.model"
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    with pytest.raises(ValueError, match="'<|x|>' appears twice in special_tokens"):
        bpe.from_tiktoken(path, pattern=bpe.GPT2_PATTERN, special_tokens=["<|x|>", "<|y|>", "<|x|>"])
    tok = bpe.from_tiktoken(path, pattern=bpe.GPT2_PATTERN, special_tokens=["<|x|>", "<|y|>"])
    assert tok.special_tokens == {"<|x|>": 256, "<|y|>": 257}
