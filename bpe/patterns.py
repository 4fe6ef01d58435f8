"""Pre-tokenisation patterns: how text is cut into chunks before byte-pair merging.

BPE never merges across a chunk boundary, so the pattern decides what a token can be: with these
patterns a token never holds both a letter and a digit, and a space sticks to the word after it.
Both strings are tiktoken's current ones and need the `regex` module (possessive quantifiers, \\p{L}).
"""

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
