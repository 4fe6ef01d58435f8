"""Keep a big graph readable: fold repeated blocks, cap the node count, and place the boxes.

A GPT's forward pass runs the same block n_layers times, so the ops of its graph, in the order the
forward pass made them, hold one run of ops repeated back to back. ``find_repeat`` finds the longest
such run (its shortest period); ``fold`` keeps the first copy open and folds every later copy into one
group box (its parameters go inside it). If more than ``max_nodes`` boxes remain, the earliest ones are
folded into one "earlier" box. ``place`` puts each box in a column by its longest path from an input,
left to right, and orders each column by where its inputs sit.
"""

MIN_PERIOD = 4      # a repeated run shorter than this is not worth folding
MAX_PERIOD = 400    # nor is one longer than this looked for (the search costs about n x period)


def find_repeat(seq, min_period=MIN_PERIOD):
    """(start, period, copies) of the longest back-to-back repetition in ``seq``, or None."""
    n, best = len(seq), None
    for p in range(min(n // 2, MAX_PERIOD), min_period - 1, -1):
        for s in range(0, n - 2 * p + 1):
            if seq[s] == seq[s + p] and seq[s:s + p] == seq[s + p:s + 2 * p]:
                k = 2
                while seq[s + k * p:s + (k + 1) * p] == seq[s:s + p]:
                    k += 1
                if best is None or p * k > best[1] * best[2] or (p * k == best[1] * best[2] and p < best[1]):
                    best = (s, p, k)
                break
    return best


def fold(order, parents, is_op, labels, max_nodes=200):
    """Groups [{"label", "members"}] and each tensor's group (index -> group number or None).

    ``order``: tensor numbers in forward order; ``parents``: number -> input numbers; ``is_op``: number
    -> made by an op; ``labels``: number -> op name."""
    ops = [i for i in order if is_op[i]]
    group_of, groups = {}, []
    found = find_repeat([labels[i] for i in ops])
    if found:
        start, period, copies = found
        for c in range(1, copies):
            members = ops[start + c * period:start + (c + 1) * period]
            groups.append({"label": f"repeat {c + 1} of {copies} ({period} ops)", "members": members})
            for m in members:
                group_of[m] = len(groups) - 1
    _fold_private_leaves(order, parents, is_op, group_of, groups)
    visible = [i for i in order if i not in group_of]
    boxes = len(visible) + len(groups)
    if boxes > max_nodes:
        early = visible[:boxes - max_nodes + 1]
        groups.append({"label": f"{len(early)} earlier tensors", "members": early})
        for m in early:
            group_of[m] = len(groups) - 1
    return groups, group_of


def _fold_private_leaves(order, parents, is_op, group_of, groups):
    """A leaf whose every user is inside one group goes into that group too (a block's parameters)."""
    users = {}
    for i in order:
        for p in parents[i]:
            users.setdefault(p, set()).add(group_of.get(i))
    for i in order:
        if not is_op[i] and i in users and len(users[i]) == 1:
            g = next(iter(users[i]))
            if g is not None:
                group_of[i] = g
                groups[g]["members"].append(i)


def place(order, parents, group_of, n_groups, dx=170, dy=64):
    """{"boxes": [{"ref", "x", "y"}], "edges": [[from_ref, to_ref]], "width", "height"}; a ref is
    "n<number>" for a tensor's box and "g<number>" for a group's."""
    ref = {i: (f"g{group_of[i]}" if i in group_of else f"n{i}") for i in order}
    refs, edges = [], []
    for i in order:
        if ref[i] not in refs:
            refs.append(ref[i])
        for p in parents[i]:
            e = [ref[p], ref[i]]
            if e[0] != e[1] and e not in edges:
                edges.append(e)
    inputs = {r: [] for r in refs}
    for a, b in edges:
        inputs[b].append(a)
    column = {}
    for r in refs:                                   # refs come inputs first (forward order)
        column[r] = 1 + max((column[a] for a in inputs[r] if a in column), default=-1)
    by_column, y_of, boxes, height = {}, {}, [], 0
    for r in refs:
        by_column.setdefault(column[r], []).append(r)
    for c in sorted(by_column):
        def want(r):
            above = [y_of[a] for a in inputs[r] if a in y_of]
            return (sum(above) / len(above) if above else 0, refs.index(r))
        for row, r in enumerate(sorted(by_column[c], key=want)):
            y_of[r] = row
            boxes.append({"ref": r, "x": 20 + c * dx, "y": 20 + row * dy})
            height = max(height, 20 + row * dy + dy)
    width = 20 + (max(column.values(), default=0) + 1) * dx
    return {"boxes": boxes, "edges": edges, "width": width, "height": height}
