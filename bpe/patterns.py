"""Pre-tokenisation patterns: how text is cut into chunks before byte-pair merging.

BPE never merges across a chunk boundary, so the pattern decides what a token can be: with these
patterns a token never holds both a letter and a digit, and a space sticks to the word after it.
The strings are the published ones and need the `regex` module (possessive quantifiers, \\p{L}).

A `Splitter` applies a pattern and guarantees that the chunks tile the text in order (a pattern that
matches backwards, `(?r)`, is refused): a tokenizer must never drop
a character, so a pattern that skips part of a varied probe text is refused when it is loaded, and text
that it skips later raises instead of vanishing. A pattern we do not ship may backtrack for ever on some
texts: its matching gets a time bound (TIMEOUT seconds plus TIMEOUT_PER_CHAR per character). One whose
repetitions count out to more than MAX_PIECES pieces (``a{100000000}``) is refused before compiling,
which would take gigabytes.
"""
import regex

# GPT-2 (tiktoken's "gpt2" and "r50k_base"). Equivalent to GPT-2's published pattern
# r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", written to run faster.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

# GPT-4 (tiktoken's "cl100k_base"): case-insensitive contractions, numbers in groups of at most 3 digits.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# GPT-2's published pattern as Hugging Face's ByteLevel pre-tokenizer writes it (use_regex=True).
HF_BYTELEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Llama 3 (its tiktoken file and its tokenizer.json's Split): like GPT-4's, without possessive quantifiers.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2, Qwen2.5 and Qwen3: Llama 3's with every digit a chunk of its own.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# the shipped patterns run in linear time: no time bound (it costs ~70% of the matching time)
TRUSTED = frozenset({GPT2_PATTERN, GPT4_PATTERN, HF_BYTELEVEL_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN})

TIMEOUT = 1.0               # seconds any other pattern may take on a text, plus
TIMEOUT_PER_CHAR = 1e-5     # this per character (about 50x what the shipped patterns need)

# letters, digits, punctuation, every kind of space and line break, controls, accents (composed and
# not), scripts, numbers that are not ASCII digits, symbols, emoji (astral, joined, flagged), private
# use, unassigned, a byte-order mark and a lone surrogate
PROBE = (
    "Hello, World! it's we'LL I'M don't 12345 3.14 -7 1,000,000 x=y+z; (a[b]{c}) \"q\" `t` ~^|\\/ @#$%&*_ "
    "\t\n\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000  \n\n  x"
    "\x00\x01\x07\x1b\x7f\x80\x9f é ñ ü ß ø Å ç e\u0301 n\u0303 \u0308 Ω π Ж я عربي שלום हिन्दी ไทย "
    "日本語 中文 한국어 ½ ² ³ Ⅻ ① ٣٤ ߁ ௫ 𝟙 € £ ¥ © ® ™ ° ± × ÷ ¬ § ¶ • … — – ‘’ “” « » "
    "😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷 ❤\ufe0f \ue000 \U000f0000 \ufeff \u200b \ufffd \U0010ffff \u0378 \ud800 end"
)


MAX_PIECES = 100_000        # the most pieces a pattern may expand to (its repetitions counted out)

_COUNT = regex.compile(r"\{(\d*)(?:,(\d*))?\}")
_NAMED_ESCAPE = regex.compile(r"\\[pPNx]\{[^}]*\}|\\.", regex.DOTALL)


def expanded_size(pattern):
    """(pieces, the largest repetition) of ``pattern``: about how many pieces compiling it makes, each
    ``x{n}`` or ``x{n,}`` counting n copies of x (nested ones multiply), and the text of the repetition
    that costs most. A rough measure, made without compiling: memory while compiling grows with it."""
    stack, seq, i, worst = [], [], 0, (0, "")
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            m = _NAMED_ESCAPE.match(pattern, i)
            end = m.end() if m else len(pattern)
            seq.append((1, i))
        elif c == "[":                                    # a character class is one piece
            end = i + 1 + (pattern[i + 1:i + 2] == "^")
            end += pattern[end:end + 1] == "]"
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            end += 1
            seq.append((1, i))
        elif c == "(":
            stack.append((seq, i))
            seq, end = [], i + 1
        elif c == ")" and stack:
            inner = sum(n for n, _ in seq)
            seq, start = stack.pop()
            seq.append((inner + 1, start))
            end = i + 1
        elif c == "{" and seq and (m := _COUNT.match(pattern, i)) and (m.group(1) or m.group(2)):
            n, start = seq.pop()
            n *= max(int(m.group(1) or 0), 1)
            seq.append((n, start))
            worst = max(worst, (n, pattern[start:m.end()]))
            end = m.end()
        else:
            seq.append((1, i))
            end = i + 1
        i = end
    while stack:                                          # an unclosed group: compiling will say so
        inner = sum(n for n, _ in seq)
        seq, start = stack.pop()
        seq.append((inner + 1, start))
    return sum(n for n, _ in seq), worst[1]


def _check_size(pattern):
    pieces, worst = expanded_size(pattern)
    if pieces > MAX_PIECES:
        shown = worst if len(worst) <= 40 else worst[:37] + "..."
        raise ValueError(f"pattern {_short(pattern)}: {shown!r} repeats its part so often that the pattern "
                         f"counts out to about {pieces:,} pieces, more than {MAX_PIECES:,} (compiling it would "
                         f"take gigabytes); use + or * instead of a large count")


class Splitter:
    """Cuts text into chunks with `pattern`; the chunks always tile the text.

    keep_gaps: False (bpe's own rule): a pattern that skips characters is refused (checked on PROBE), and
        text it skips later raises ValueError. True (Hugging Face's Split with behavior "Isolated"): the
        text between matches becomes chunks of its own, so nothing is ever dropped.
    name: where the pattern came from (a file), for error messages; may be set later.
    """

    def __init__(self, pattern, name=None, keep_gaps=False):
        if not isinstance(pattern, str):
            raise ValueError(f"invalid pattern {pattern!r}: not a string")
        _check_size(pattern)
        try:
            self.regex = regex.compile(pattern)
        except (regex.error, TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"invalid pattern {pattern!r}: {e}") from None
        if self.regex.flags & regex.REVERSE:
            raise ValueError(f"pattern {_short(pattern)} matches backwards (the (?r) flag): its chunks would "
                             f"put the text out of order; remove the flag")
        self.pattern, self.name, self.keep_gaps = pattern, name, keep_gaps
        self.timed = pattern not in TRUSTED
        self._findall = self._whole_matches if self.regex.groups else self.regex.findall
        if not keep_gaps:
            limit = TIMEOUT if self.timed else None
            try:
                chunks = self._findall(PROBE, timeout=limit)
                at = None if "".join(chunks) == PROBE else self._first_skipped(PROBE, limit)
            except TimeoutError:
                raise ValueError(f"the pattern took more than {TIMEOUT:g} s on a {len(PROBE)}-character "
                                 f"probe text (catastrophic backtracking?); use a simpler pattern") from None
            if at is not None:
                raise ValueError(f"pattern {_short(pattern)} does not cover every character (it skips "
                                 f"{ascii(PROBE[at])} of a probe text); a tokenizer must not drop text: add "
                                 f"an alternative that matches anything else, such as '|\\s+|[^\\s]+'")

    def __call__(self, text):
        """The chunks of `text`, in order; joined they give `text` back."""
        limit = TIMEOUT + TIMEOUT_PER_CHAR * len(text) if self.timed else None
        try:
            chunks = self._findall(text, timeout=limit)
            if "".join(chunks) == text:                      # tiled, in order
                return chunks
            if self.keep_gaps:
                return self._with_gaps(text, limit)
            at = self._first_skipped(text, limit)
        except TimeoutError:
            raise ValueError(f"{self._where()}the tokenizer's pattern took more than {limit:g} s to split "
                             f"{len(text)} characters (catastrophic backtracking?); use a tokenizer with "
                             f"a simpler pattern") from None
        raise ValueError(f"{self._where()}the tokenizer's pattern skips {ascii(text[at])} at position {at} "
                         f"of the text; a tokenizer must not drop text (its pattern needs an alternative "
                         f"for every character)")

    def _where(self):
        return f"{self.name}: " if self.name else ""

    def _whole_matches(self, text, timeout=None):
        return [m.group() for m in self.regex.finditer(text, timeout=timeout)]

    def _first_skipped(self, text, timeout):
        pos = 0
        for m in self.regex.finditer(text, timeout=timeout):
            if m.start() != pos:                     # a gap, or a match that goes back
                return pos
            pos = m.end()
        return pos

    def _with_gaps(self, text, timeout):
        out, pos = [], 0
        for m in self.regex.finditer(text, timeout=timeout):
            if m.start() < pos:
                raise ValueError(f"{self._where()}the tokenizer's pattern went back to position {m.start()} "
                                 f"after matching up to {pos}; its chunks must keep the text in order")
            if m.start() > pos:
                out.append(text[pos:m.start()])
            if m.end() > m.start():
                out.append(m.group())
            pos = m.end()
        if pos < len(text):
            out.append(text[pos:])
        return out


def _short(pattern):
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:77]) + "..."
