"""Offline data sets for fine-tuning, made from nothing but the CPython install.

``make_instruct`` writes synthetic Alpaca-style tasks whose answers can be checked exactly; each entry
has a "kind" key so accuracy can be reported per kind of task:

    add      add a one-digit number to a two-digit one  "37+5"                       -> "42"
    reverse  reverse a list of 2-4 words                "set,time,class"             -> "class,time,set"
    field    copy one field out of a record             "name=one,file=set,text=up"  -> "set"  (file?)
    yesno    is a word in the list? (half yes, half no) "set,time,class"  (time?)    -> "yes"

The tasks are sized for the tiny model of ``python -m gpt train``, whose 2,048-token BPE vocabulary is
trained on the default corpus: every word used is one token of that vocabulary (and of the 1,024-token
one it extends), with or without a space in front (checked on CPython 3.11's corpus; another
version's may split a few), and lists are written without spaces ("a,b,c") so a word is the same
token wherever it sits; digits are one token each. Copying a word is then copying one token.

``make_classify`` writes a two-class TSV of text that ships with CPython (``TASKS``): whole sentences of
the help topics' prose (label "doc") against lines of the standard library's code (label "code"), or,
with task "doc-vs-comment", against its comments (label "comment"), a harder pair: two registers of
technical English, and many comments read like the docs.
"""
import json
import os
import re
import sysconfig

import numpy as np

from tinytensor.atomic import write_text

KINDS = ("add", "reverse", "field", "yesno")

# one token each in the tiny model's tokenizer (checked with bpe.Tokenizer.load of its tokenizer.bpe)
WORDS = ("class", "string", "set", "one", "all", "use", "up", "line", "time", "read", "error", "get", "self", "str")
KEYS = ("name", "file", "text")                     # a record's fields, always in this order


def _add(rng):
    a, b = int(rng.integers(10, 100)), int(rng.integers(1, 10))
    return {"instruction": "Add the numbers.", "input": f"{a}+{b}", "output": str(a + b)}


def _words(rng, n):
    return [WORDS[i] for i in rng.choice(len(WORDS), n, replace=False)]


def _reverse(rng):
    items = _words(rng, int(rng.integers(2, 5)))
    return {"instruction": "Reverse the list.", "input": ",".join(items), "output": ",".join(reversed(items))}


def _field(rng):
    values = [WORDS[int(rng.integers(len(WORDS)))] for _ in KEYS]
    ask = int(rng.integers(len(KEYS)))
    return {"instruction": f'Give the "{KEYS[ask]}" field.',
            "input": ",".join(f"{k}={v}" for k, v in zip(KEYS, values)), "output": values[ask]}


def _yesno(rng):
    picks = _words(rng, 4)
    items, outsider = picks[:3], picks[3]
    yes = bool(rng.integers(2))
    word = items[int(rng.integers(3))] if yes else outsider
    return {"instruction": f'Is "{word}" in the list?', "input": ",".join(items), "output": "yes" if yes else "no"}


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


def _pieces(text, most=240, least=40):
    """``text`` cut into pieces of whole sentences, each at most ``most`` characters (a longer sentence
    is cut at a space); pieces shorter than ``least`` are dropped."""
    out, cur = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", text.strip()):
        while len(sentence) > most:
            cut = sentence.rfind(" ", 0, most)
            cut = cut if cut > least else most
            out += [cur] if cur else []
            out.append(sentence[:cut])
            cur, sentence = "", sentence[cut:].strip()
        if cur and len(cur) + 1 + len(sentence) > most:
            out.append(cur)
            cur = sentence
        else:
            cur = f"{cur} {sentence}".strip()
    out += [cur] if cur else []
    return [p for p in out if len(p) >= least]


def _doc_lines():
    """Pieces of the help topics' prose (paragraphs that are not indented: no code, no grammar), whole
    sentences up to 240 characters."""
    import pydoc_data.topics as topics
    out = []
    for key in sorted(topics.topics):
        for para in re.split(r"\n\s*\n", topics.topics[key]):
            lines = para.splitlines()
            if lines and not any(ln.startswith((" ", "\t")) or re.fullmatch(r"[-=*~^]{3,}", ln) for ln in lines) \
                    and re.match(r"[A-Za-z]", lines[0]):
                out += _pieces(" ".join(ln.strip() for ln in lines))
    return out


def _stdlib_files():
    stdlib = sysconfig.get_paths()["stdlib"]
    return [os.path.join(stdlib, name) for name in sorted(os.listdir(stdlib)) if name.endswith(".py")]


def _comment_lines():
    """Pieces of the standard library's comments: each block of consecutive comment lines joined (the
    "#" taken off), then cut into whole sentences up to 240 characters; licence text left out."""
    out = []
    for path in _stdlib_files():
        block = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for ln in list(f) + [""]:
                s = ln.strip()
                if s.startswith("#") and not s.startswith("#!"):
                    block.append(s.lstrip("#").strip())
                    continue
                text = " ".join(b for b in block if b)
                block = []
                if re.match(r"[A-Za-z]", text) and not re.search(r"copyright|licen[cs]e|warranty", text, re.I):
                    out += _pieces(text)
    return out


def _code_lines():
    """Lines of the standard library's Python code: not comments, not inside a triple-quoted string (a
    docstring), 30 to 120 characters, each holding some punctuation of code."""
    out = []
    for path in _stdlib_files():
        quote = None                                   # the triple quote of the string we are inside, if any
        with open(path, encoding="utf-8", errors="replace") as f:
            for ln in f:
                s = ln.strip()
                inside = quote is not None
                for q in re.findall(r'"""|\'\'\'', s):
                    if quote is None:
                        quote, inside = q, True
                    elif q == quote:
                        quote = None
                if not inside and not s.startswith("#") and 30 <= len(s) <= 120 and re.search(r"[=(\[:.]", s):
                    out.append(s)
    return out


# the two-class tasks make-data classify can write: name -> ((label, source of texts), (label, source))
TASKS = {"doc-vs-code": (("doc", _doc_lines), ("code", _code_lines)),
         "doc-vs-comment": (("doc", _doc_lines), ("comment", _comment_lines))}


def make_classify(n_per_class=1000, seed=0, task="doc-vs-code"):
    """[(label, text)] for ``task`` (see TASKS): ``n_per_class`` texts of each class, sampled with ``seed``,
    shuffled; tabs become spaces so each text stays one TSV row. ValueError when this Python install
    holds fewer distinct texts of either class than asked (the classes would not be balanced)."""
    if task not in TASKS:
        raise ValueError(f"make-data classify: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    rng = np.random.default_rng(seed)
    classes = [(label, sorted(set(source()))) for label, source in TASKS[task]]
    most = min(len(texts) for _, texts in classes)
    if n_per_class > most:
        counts = ", ".join(f"{len(texts):,} {label}" for label, texts in classes)
        raise ValueError(f"make-data classify: this Python install holds {counts} texts; --n-per-class can be "
                         f"at most {most:,} (asked for {n_per_class:,})")
    out = []
    for label, texts in classes:
        out += [(label, texts[i].replace("\t", " ")) for i in rng.choice(len(texts), n_per_class, replace=False)]
    return [out[i] for i in rng.permutation(len(out))]


def _atomic_write(path, text):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, text)


def write_instruct(path, n=2000, seed=0):
    entries = make_instruct(n, seed)
    _atomic_write(path, json.dumps(entries, indent=1, ensure_ascii=False) + "\n")
    return entries


def write_classify(path, n_per_class=1000, seed=0, task="doc-vs-code"):
    rows = make_classify(n_per_class, seed, task)
    _atomic_write(path, "".join(f"{label}\t{text}\n" for label, text in rows))
    return rows
