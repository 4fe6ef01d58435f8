"""ZeroRedundancyOptimizer in one process (two ranks: scripts/check_ddp.py): how parameters are dealt out,
and that a world of one steps exactly as the optimizer it wraps."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.distributed as dist
from tinytensor import nn, optim
from tinytensor.distributed.zero import deal


pytestmark = pytest.mark.usefixtures("alone")       # a world of one (conftest.py)


def test_deal_gives_the_largest_parameters_out_first_to_the_least_loaded_rank():
    assert deal([10, 50, 30, 30, 5], 2) == [0, 0, 1, 1, 0]          # 50, 30, 30, 10, 5: loads 65 and 60
    assert deal([10, 50, 30, 30, 5], 1) == [0] * 5
    assert deal([4, 4], 3) == [0, 1]                                 # more ranks than parameters: some hold none


def test_a_world_of_one_steps_exactly_like_the_wrapped_optimizer():
    def run(make):
        tt.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
        groups = [{"params": [model[0].weight, model[1].weight]},
                  {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}]
        opt = make(groups)
        x = tt.tensor(np.random.default_rng(0).standard_normal((5, 4)))
        for _ in range(3):
            (model(x) ** 2).mean().backward()
            opt.step()
            opt.zero_grad()
        return model.state_dict(), opt.state_dict()
    weights, state = run(lambda g: dist.ZeroRedundancyOptimizer(g, optim.AdamW, lr=1e-2, weight_decay=0.1))
    want_weights, want_state = run(lambda g: optim.AdamW(g, lr=1e-2, weight_decay=0.1))
    for name, value in want_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert state["param_groups"] == want_state["param_groups"] and state["state"].keys() == want_state["state"].keys()
    for i, entry in want_state["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(state["state"][i][key], value)


def test_load_state_dict_refuses_an_index_past_the_parameters():
    opt = dist.ZeroRedundancyOptimizer(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="names parameter 5, but there are only 2"):
        opt.load_state_dict({"param_groups": [{"lr": 1e-3}], "state": {"5": {"step": 1}}})
