"""Offline data sets for fine-tuning, made from nothing but the CPython install.

``make_instruct`` writes synthetic Alpaca-style tasks whose answers can be checked exactly; each entry
has a "kind" key so accuracy can be reported per kind of task:

    add      two-digit addition                   "37 + 48"                      -> "85"
    reverse  reverse a short list                 "red, fox, tree"               -> "tree, fox, red"
    field    copy one field out of a record       "name: Ada; city: Rome; ..."   -> "Rome"
    yesno    is a word in the list?               "pear, fig, lime"  (fig?)      -> "yes"

``make_classify`` writes a two-class TSV: lines of English documentation prose (the pydoc topics that
ship with CPython, label "doc") against English comment lines of the standard library's own Python
source (label "comment"): two registers of technical English.
"""
import json
import os
import re
import sysconfig

import numpy as np

KINDS = ("add", "reverse", "field", "yesno")

WORDS = ("red", "blue", "green", "black", "white", "apple", "pear", "plum", "lime", "fig", "cat", "dog",
         "fox", "owl", "bee", "sun", "moon", "star", "rain", "snow", "tree", "leaf", "rock", "sand",
         "ship", "car", "book", "pen", "cup", "hat", "door", "key", "lamp", "bell", "fish", "bird",
         "milk", "salt", "gold", "iron")
FIELDS = {
    "name": ("Ada", "Alan", "Grace", "Linus", "Guido", "Ken", "Barbara", "Donald", "Edsger", "Tim"),
    "city": ("Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Berlin", "Madrid", "Dublin", "Delhi"),
    "color": ("red", "blue", "green", "black", "white", "yellow", "brown", "pink", "gray", "orange"),
    "age": tuple(str(n) for n in range(18, 80, 3)),
    "pet": ("cat", "dog", "fish", "bird", "horse", "mouse", "snake", "frog", "rabbit", "turtle"),
}


def _add(rng):
    a, b = (int(x) for x in rng.integers(10, 100, size=2))
    return {"instruction": "Add the two numbers.", "input": f"{a} + {b}", "output": str(a + b)}


def _reverse(rng):
    n = int(rng.integers(3, 6))
    items = [WORDS[i] for i in rng.choice(len(WORDS), n, replace=False)]
    return {"instruction": "Reverse the order of the list.", "input": ", ".join(items),
            "output": ", ".join(reversed(items))}


def _field(rng):
    names = list(FIELDS)
    chosen = [names[i] for i in rng.choice(len(names), 3, replace=False)]
    values = {k: FIELDS[k][int(rng.integers(len(FIELDS[k])))] for k in chosen}
    ask = chosen[int(rng.integers(3))]
    record = "; ".join(f"{k}: {values[k]}" for k in chosen)
    return {"instruction": f"What is the {ask} in the record?", "input": record, "output": values[ask]}


def _yesno(rng):
    n = int(rng.integers(3, 6))
    picks = [WORDS[i] for i in rng.choice(len(WORDS), n + 1, replace=False)]
    items, outsider = picks[:n], picks[n]
    yes = bool(rng.integers(2))
    word = items[int(rng.integers(n))] if yes else outsider
    return {"instruction": f"Is the word \"{word}\" in the list? Answer yes or no.", "input": ", ".join(items),
            "output": "yes" if yes else "no"}


MAKERS = {"add": _add, "reverse": _reverse, "field": _field, "yesno": _yesno}


def make_instruct(n=2000, seed=0, kinds=KINDS):
    """``n`` entries cycling through ``kinds`` (so each kind gets n / len(kinds)), in shuffled order;
    no two entries share the same instruction and input."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    attempts = 0
    while len(out) < n:
        kind = kinds[len(out) % len(kinds)]
        entry = MAKERS[kind](rng)
        attempts += 1
        key = (entry["instruction"], entry["input"])
        if key in seen:
            if attempts > 50 * n:
                raise ValueError(f"make_instruct: cannot make {n} distinct entries")
            continue
        seen.add(key)
        entry["kind"] = kind
        out.append(entry)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _doc_lines():
    import pydoc_data.topics as topics
    text = "\n".join(topics.topics[k] for k in sorted(topics.topics))
    return [ln.strip() for ln in text.splitlines()
            if len(ln.strip()) >= 40 and not ln.startswith((" ", "\t")) and re.match(r"[A-Za-z]", ln)]


def _comment_lines():
    stdlib = sysconfig.get_paths()["stdlib"]
    out = []
    for name in sorted(os.listdir(stdlib)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(stdlib, name), encoding="utf-8", errors="replace") as f:
            for ln in f:
                s = ln.strip()
                if s.startswith("# ") and len(s) >= 42 and re.match(r"# [A-Za-z]", s):
                    out.append(s[2:].strip())
    return out


def make_classify(n_per_class=1000, seed=0):
    """[(label, text)]: ``n_per_class`` "doc" lines and as many "comment" lines (fewer if the install
    has fewer), sampled with ``seed``, shuffled; tabs become spaces so each line stays one TSV row."""
    rng = np.random.default_rng(seed)
    out = []
    for label, lines in (("doc", sorted(set(_doc_lines()))), ("comment", sorted(set(_comment_lines())))):
        k = min(n_per_class, len(lines))
        out += [(label, lines[i].replace("\t", " ")) for i in rng.choice(len(lines), k, replace=False)]
    return [out[i] for i in rng.permutation(len(out))]


def _atomic_write(path, text):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def write_instruct(path, n=2000, seed=0):
    entries = make_instruct(n, seed)
    _atomic_write(path, json.dumps(entries, indent=1, ensure_ascii=False) + "\n")
    return entries


def write_classify(path, n_per_class=1000, seed=0):
    rows = make_classify(n_per_class, seed)
    _atomic_write(path, "".join(f"{label}\t{text}\n" for label, text in rows))
    return rows
