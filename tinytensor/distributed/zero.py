"""ZeRO stage 1: each rank keeps the optimizer state of its own share of the parameters only.

Under DistributedDataParallel every rank holds the same averaged gradients and would take the same step
on every parameter, so N ranks keep N copies of AdamW's two moments (each as big as the model). Here
the parameters are dealt out to the ranks, largest first, each to the rank holding the fewest elements so
far. Every rank steps its own parameters with the wrapped optimizer (AdamW by default: its arithmetic,
unchanged) and then sends their new values to the others, one broadcast per rank with its parameters
packed flat. The weights come out exactly as without sharding; the optimizer's memory per rank falls to
about 1/N. (llm.c cuts one flat buffer into N equal slices instead; dealing out whole parameters keeps
the optimizer code as it is.)

    model = nn.DistributedDataParallel(gpt.GPT(cfg))
    opt = dist.ZeroRedundancyOptimizer(model.parameters(), optim.AdamW, lr=3e-4, weight_decay=0.1)

``step``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` are collectives: every rank calls them.
``state_dict()`` gathers the whole state on every rank, laid out as the unsharded optimizer's (a
checkpoint loads into either, with any number of ranks); ``param_groups`` are this rank's groups (their
"params" lists hold its share), so a learning-rate schedule sets ``group["lr"]`` as usual.
"""
import json

import numpy as np

from .. import optim
from ..backend import xp_of

COLLECTIVES = None   # the tinytensor.distributed module, handed over when it imports this file: it
                     # imports zero, so zero importing it back would close an import circle


def broadcast(x, src=0):
    return COLLECTIVES.broadcast(x, src=src)


def rank():
    return COLLECTIVES.rank()


def world_size():
    return COLLECTIVES.world_size()


def deal(sizes, world):
    """The owning rank of each of ``sizes`` (element counts): largest first, to the least-loaded rank."""
    load, owner = [0] * world, [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        owner[i] = min(range(world), key=lambda r: (load[r], r))
        load[owner[i]] += sizes[i]
    return owner


class ZeroRedundancyOptimizer:
    """Wrap ``optimizer_class`` (``optim.AdamW`` by default; built with ``**defaults``) so that each rank
    holds the state of its share of ``params_or_groups`` only. See the module docstring."""

    def __init__(self, params_or_groups, optimizer_class=None, **defaults):
        groups = optim._groups(params_or_groups, {})
        self.params = [p for g in groups for p in g["params"]]     # the unsharded optimizer's index order
        self.rank, self.world = rank(), world_size()
        self.owner = deal([p.size for p in self.params], self.world)
        self.mine = [i for i, o in enumerate(self.owner) if o == self.rank]     # global indices, in order
        shares, i = [], 0
        for g in groups:
            shares.append({**g, "params": [p for k, p in enumerate(g["params"], i) if self.owner[k] == self.rank]})
            i += len(g["params"])
        self.optimizer = (optimizer_class or optim.AdamW)(shares, **defaults)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        """Step this rank's parameters, then give every rank everyone's new values."""
        self.optimizer.step()
        for source in range(self.world):
            kinds = {}                                  # parameters of one dtype and device travel together
            for i, p in enumerate(self.params):
                if self.owner[i] == source:
                    kinds.setdefault((p.dtype, p.device), []).append(p)
            for params in kinds.values():
                flat = xp_of(params[0].data).empty(sum(p.size for p in params), dtype=params[0].dtype)
                bounds = np.cumsum([0] + [p.size for p in params])
                if source == self.rank:
                    for p, a, b in zip(params, bounds, bounds[1:]):
                        flat[a:b] = p.data.reshape(-1)
                broadcast(flat, src=source)
                if source != self.rank:
                    for p, a, b in zip(params, bounds, bounds[1:]):
                        p.data[...] = flat[a:b].reshape(p.shape)
                        p._mark_changed()       # updated in place: backward of an older graph must refuse

    def state_dict(self):
        """The whole state, on every rank, laid out as the unsharded optimizer's state_dict()."""
        mine = self.optimizer.state_dict()
        state = {}
        for source in range(self.world):
            entries = {self.mine[k]: e for k, e in mine["state"].items()} if source == self.rank else None
            state.update(_broadcast_entries(entries, source))
        return {"param_groups": mine["param_groups"], "state": dict(sorted(state.items()))}

    def load_state_dict(self, state_dict):
        """Keep this rank's share of a state saved by state_dict() here or by the unsharded optimizer."""
        local = {g: k for k, g in enumerate(self.mine)}
        state = {}
        for key, entry in state_dict["state"].items():
            if not 0 <= int(key) < len(self.params):
                raise ValueError(f"optimizer state names parameter {key}, but there are only {len(self.params)}")
            if int(key) in local:
                state[local[int(key)]] = entry
        self.optimizer.load_state_dict({"param_groups": state_dict["param_groups"], "state": state})


def _broadcast_entries(entries, source):
    """``entries`` ({index: {name: number or host array}}) on rank ``source``, sent to every rank: a JSON
    header of the names, numbers, shapes and dtypes, then the arrays' bytes, all through broadcast()."""
    header, data = b"", np.zeros(0, np.uint8)
    if entries is not None:
        described, blobs = [], []
        for index, entry in entries.items():
            fields = {}
            for name, value in entry.items():
                if hasattr(value, "shape"):
                    fields[name] = ["array", list(value.shape), str(value.dtype)]
                    blobs.append(np.ascontiguousarray(value).view(np.uint8).reshape(-1))
                else:
                    fields[name] = ["number", value]
            described.append([int(index), fields])
        header = json.dumps(described).encode()
        data = np.concatenate(blobs) if blobs else data
    sizes = np.array([len(header), data.size], dtype=np.int64)
    broadcast(sizes, src=source)
    text = np.frombuffer(header, np.uint8).copy() if entries is not None else np.empty(sizes[0], np.uint8)
    data = data if entries is not None else np.empty(sizes[1], np.uint8)
    broadcast(text, src=source)
    broadcast(data, src=source)
    out, offset = {}, 0
    for index, fields in json.loads(text.tobytes()):
        entry = {}
        for name, (kind, *spec) in fields.items():
            if kind == "number":
                entry[name] = spec[0]
            else:
                shape, dtype = spec
                n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                entry[name] = data[offset:offset + n].view(dtype).reshape(shape).copy()
                offset += n
        out[index] = entry
    return out
