"""DistributedDataParallel in a world of one process: buckets, hooks, unused and frozen parameters,
no_sync, and the pass-through to the wrapped model. (Two ranks: test_ddp_mpi.py.)"""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.functional as F
from tinytensor import nn
from tinytensor.distributed.ddp import assign_buckets


pytestmark = pytest.mark.usefixtures("alone")       # a world of one (conftest.py)


class Net(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(11, 6)
        self.hidden = nn.Linear(6, 8)
        self.frozen = nn.Linear(8, 8)
        self.frozen.weight.requires_grad_(False)
        self.spare = nn.Linear(8, 3)                        # never used in forward
        self.head = nn.Linear(8, 5)
        self.note = "a plain attribute"

    def forward(self, ids):
        return self.head(self.frozen(self.hidden(self.embed(ids)).tanh()))


def grads_of(model, ids, targets):
    model.zero_grad()
    F.cross_entropy(model(ids), targets).backward()
    return {n: (None if p.grad is None else p.grad.copy()) for n, p in model.named_parameters()}


def test_assign_buckets_caps_sizes_and_never_splits_a_parameter():
    params = [(f"p{i}", nn.Parameter(np.zeros(n, np.float32))) for i, n in enumerate([10, 300, 20, 20, 5, 2000, 1])]
    buckets = assign_buckets(params, bucket_bytes=400, first_bucket_bytes=100)
    names = [[n for n, _ in b] for b in buckets]
    assert names == [["p0"], ["p1"], ["p2", "p3", "p4"], ["p5"], ["p6"]]
    assert [n for b in names for n in b] == [n for n, _ in params]       # every one once, order kept
    mixed = [("a", nn.Parameter(np.zeros(2, np.float32))), ("b", nn.Parameter(np.zeros(2), dtype=np.float64))]
    assert len(assign_buckets(mixed, bucket_bytes=1 << 20)) == 2          # dtypes never share a buffer


def test_buckets_cover_each_trainable_parameter_once_in_reverse_order():
    tt.manual_seed(0)
    model = Net()
    ddp = nn.DistributedDataParallel(model, bucket_mb=0.0003, first_bucket_mb=0.0001)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    in_buckets = [n for b in ddp.buckets for n in b.names]
    assert in_buckets == trainable[::-1] and len(ddp.buckets) > 2
    assert [n for n, _ in ddp.frozen] == ["frozen.weight"]


def test_gradients_equal_the_plain_model_and_unused_ones_stay_none():
    tt.manual_seed(0)
    plain = Net()
    ddp = nn.DistributedDataParallel(Net(), bucket_mb=0.0003, first_bucket_mb=0.0001)
    ddp.load_state_dict(plain.state_dict())
    ids, targets = np.array([[1, 4, 7], [2, 2, 9]]), np.array([[0, 1, 2], [3, 4, 0]])
    want = grads_of(plain, ids, targets)
    for _ in range(2):                                     # the second pass reuses the bucket buffers
        got = grads_of(ddp, ids, targets)
        assert got.keys() == want.keys()
        for name, g in want.items():
            if g is None:
                assert got[name] is None, name
            else:
                assert got[name].dtype == g.dtype
                np.testing.assert_array_equal(got[name], g, err_msg=name)
    assert want["spare.weight"] is None and want["frozen.weight"] is None
    assert ddp.sync_seconds >= ddp.wait_seconds >= 0


def test_no_sync_accumulates_and_the_next_pass_reduces_the_sum():
    tt.manual_seed(0)
    model = Net()
    ddp = nn.DistributedDataParallel(model)
    ids = np.array([[1, 2, 3]])
    with ddp.no_sync():
        F.cross_entropy(ddp(ids), np.array([[0, 1, 2]])).backward()
    assert not ddp._in_pass                                 # no pass was started: nothing to reduce
    first = model.head.weight.grad.copy()
    F.cross_entropy(ddp(ids), np.array([[3, 4, 0]])).backward()
    plain = Net()
    plain.load_state_dict(model.state_dict())
    second = grads_of(plain, ids, np.array([[3, 4, 0]]))["head.weight"]
    np.testing.assert_allclose(model.head.weight.grad, first + second, rtol=1e-6)


def test_passes_through_to_the_wrapped_model():
    tt.manual_seed(0)
    model = Net()
    ddp = nn.DistributedDataParallel(model)
    assert ddp.note == "a plain attribute" and ddp.head is model.head and ddp.module is model
    assert list(ddp.state_dict()) == list(model.state_dict())          # no "module." prefix
    assert ddp.parameters() == model.parameters()
    ddp.eval()
    assert not model.training and not model.head.training
    ids = np.array([[1, 2]])
    np.testing.assert_array_equal(ddp(ids).data, model(ids).data)
    with pytest.raises(AttributeError):
        ddp.no_such_thing


def test_unfreezing_after_wrapping_is_refused():
    model = Net()
    ddp = nn.DistributedDataParallel(model)
    model.frozen.weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match="frozen.weight was frozen when the model was wrapped"):
        F.cross_entropy(ddp(np.array([[1]])), np.array([[0]])).backward()


@pytest.mark.parametrize("kwargs, message", [
    ({"module": "not a model"}, "wraps an nn.Module, not str"),
    ({"bucket_mb": 0}, "bucket_mb must be a positive number"),
    ({"first_bucket_mb": -1}, "first_bucket_mb must be a positive number"),
])
def test_bad_arguments(kwargs, message):
    args = {"module": Net(), **kwargs}
    with pytest.raises((TypeError, ValueError), match=message):
        nn.DistributedDataParallel(**args)


def test_the_first_buckets_all_reduce_starts_before_backward_reaches_the_first_layer(monkeypatch):
    """Overlap: the bucket of the last layers starts while the embedding has no gradient yet."""
    tt.manual_seed(0)
    model = Net()
    ddp = nn.DistributedDataParallel(model, bucket_mb=0.0003, first_bucket_mb=0.0001)
    started, real = [], dist.all_reduce

    def spy(x, op="sum", async_op=False):
        started.append(model.embed.weight.grad is None)
        return real(x, op=op, async_op=async_op)
    monkeypatch.setattr(dist, "all_reduce", spy)
    F.cross_entropy(ddp(np.array([[1, 2, 3]])), np.array([[0, 1, 2]])).backward()
    assert len(started) == len(ddp.buckets) and started[0] and not started[-1], started


def test_a_backward_that_raised_does_not_spoil_the_next_one(monkeypatch):
    tt.manual_seed(0)
    model = Net()
    ddp = nn.DistributedDataParallel(model, bucket_mb=0.0003, first_bucket_mb=0.0001)
    ids, targets = np.array([[1, 4, 7]]), np.array([[0, 1, 2]])
    handle = model.embed.weight.register_post_accumulate_grad_hook(lambda t: 1 / 0)   # after some buckets began
    with pytest.raises(ZeroDivisionError):
        grads_of(ddp, ids, targets)
    handle.remove()
    started, real = [], dist.all_reduce
    monkeypatch.setattr(dist, "all_reduce", lambda *a, **k: started.append(1) or real(*a, **k))
    got = grads_of(ddp, ids, targets)
    assert len(started) == len(ddp.buckets)          # every bucket reduced again, not only those left over
    plain = Net()
    plain.load_state_dict(model.state_dict())
    want = grads_of(plain, ids, targets)
    for name, g in want.items():
        assert (got[name] is None) == (g is None), name
        if g is not None:
            np.testing.assert_array_equal(got[name], g, err_msg=name)
