"""The default corpus: English that ships with every CPython, so the main job needs no download.

Two sources, both part of every Python installation:

* the help topics behind ``help("for")`` (``pydoc_data.topics``): about 0.47 MB of the language
  reference;
* the docstrings of the standard library's own modules: every module, class and function docstring
  of the ``.py`` files in the stdlib folder (tests and site-packages left out), about 1.5 MB.

Each help topic is one document, and so is each module's docstrings (module, then classes and
functions in source order, a blank line between). Paragraphs of prose are unwrapped to one line each
(``unwrap``): the sources break lines at about 70 columns, and a small model fed those breaks learns
above all to emit line breaks. Indented lines (code, grammar) and lists keep their lines. The
documents are sorted by name, then shuffled with
a fixed seed, so the validation share at the end of the text is a mix of both sources rather than the
last modules of the alphabet, and joined with the end-of-text token.

Gathering the docstrings parses several hundred files (seconds), so the corpus is cached
(``gpt/data/cache.py``) under a key made of the Python version and the names and sizes of the files it was
built from, and checked against the digest of its text in its file name when read back. One Python
version always gives the same text.
"""
import ast
import os
import re
import sys
import sysconfig

import numpy as np

from .. import files
from . import cache

EOT = "<|endoftext|>"
NAME = "CPython's help topics and standard-library docstrings"
_VERSION = 2                    # change when the way the corpus is built changes: old caches are then ignored
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def unwrap(text):
    """``text`` with each paragraph of prose joined into one line. A paragraph (lines between blank
    lines) is prose when none of its lines is indented and none starts a list item, a table, a doctest
    or a heading's underline; other paragraphs keep their line breaks."""
    out = []
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        lines = para.split("\n")
        if len(lines) > 1 and not any(_kept(ln) for ln in lines):
            para = " ".join(ln.strip() for ln in lines)
        out.append(para)
    return "\n\n".join(out)


def _kept(line):
    return bool(line[:1].isspace() or re.match(r"([-*+|>=~^]|\d+[.)] )", line))


def help_topics():
    """The help topics behind ``help("for")``: one (name, text) per topic, sorted by name."""
    from pydoc_data import topics
    return [(f"topic {k}", unwrap(topics.topics[k]) + "\n") for k in sorted(topics.topics)]


def help_text():
    """The help topics alone, joined with the end-of-text token (about 0.47 MB; quick to get)."""
    return f"\n{EOT}\n".join(text for _, text in help_topics())


def stdlib_sources(root=None):
    """(path relative to the stdlib folder, full path) of its ``.py`` files, in a fixed order."""
    root = root or sysconfig.get_paths()["stdlib"]
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return out


def docstrings(source):
    """The docstrings of a module's source, module first, then classes and functions in source order."""
    found = []

    def visit(node):
        text = ast.get_docstring(node)
        if text and text.strip():
            found.append(text.strip())
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child)
    visit(ast.parse(source))
    return found


def stdlib_docstrings(sources=None):
    """One (name, text) document per stdlib module that has docstrings; files that do not parse as this
    Python's source (a few test fixtures, other encodings) are left out."""
    docs = []
    for rel, path in sources if sources is not None else stdlib_sources():
        try:
            with open(path, encoding="utf-8") as f:
                found = docstrings(f.read())
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
            continue
        if found:
            docs.append((f"module {rel}", "\n\n".join(unwrap(d) for d in found) + "\n"))
    return docs


def build(sources=None, seed=0):
    """The corpus text, built now (no cache): every document, shuffled with ``seed``, joined with EOT."""
    docs = sorted(help_topics() + stdlib_docstrings(sources))
    order = np.random.default_rng(seed).permutation(len(docs))
    return f"\n{EOT}\n".join(docs[i][1] for i in order)


def _key(sources):
    """What decides the corpus: this builder's version, Python's version, the files read and their sizes."""
    parts = [f"v{_VERSION}", sys.version, str(len(help_topics()))]
    for rel, path in sources:
        try:
            parts.append(f"{rel}\t{os.path.getsize(path)}")
        except OSError:
            parts.append(f"{rel}\t?")
    return cache.digest("\n".join(parts).encode("utf-8"))


def _read_cached(stem):
    """The cached corpus whose name starts with ``stem`` and whose contents match the digest in its name."""
    folder, prefix = os.path.split(stem)
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(prefix + "-") and n.endswith(".txt"))
    except OSError:
        return None
    for name in names:
        path = os.path.join(folder, name)
        try:
            text = files.read_text(path, files.MAX_TEXT, "a cached corpus")
        except (OSError, ValueError):
            text = None
        if text is not None and name == f"{prefix}-{cache.digest(text.encode('utf-8'))}.txt":
            return text
        cache.remove_quietly(path)                       # damaged or swapped: build again
    return None


def default_corpus():
    """The default corpus (see the module's docstring), from the cache when it holds it."""
    sources = stdlib_sources()
    stem = os.path.join(cache.cache_dir("corpus"), f"cpython-{sys.version_info[0]}.{sys.version_info[1]}-"
                                                   f"{_key(sources)}")
    text = _read_cached(stem)
    if text is None:
        text = build(sources)
        from tinytensor.atomic import write_text
        cache.try_write(lambda path: write_text(path, text), f"{stem}-{cache.digest(text.encode('utf-8'))}.txt")
    return text


def read_text(path):
    """A UTF-8 text file's contents; errors say what is wrong in one line. Only a regular file of at most
    ``files.MAX_TEXT`` bytes is read (not a FIFO or a device such as /dev/zero)."""
    path = os.fspath(path)
    text = files.read_text(path, files.MAX_TEXT, "a text to train on")
    if not text.strip():
        raise ValueError(f"{path} holds no text")
    return text
