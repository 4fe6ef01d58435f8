"""06 - Byte-pair encoding: watch the merges being learned, then watch a word being encoded.

BPE starts from the 256 byte values and repeatedly merges the most frequent adjacent pair into a
new token. Text is first cut into chunks (words with their leading space, numbers, punctuation) by
a regular expression, and merges never cross a chunk boundary.

What to look at:
  1. The merge log on a tiny text: each line is one merge, the pair that was most frequent at that
     moment and how often it occurred. Early merges join common letter pairs ('we', 'he'); later
     ones glue those into whole words (' the', ' lowest'). Ties go to the smallest pair of ids.
  2. One word encoded step by step: encoding replays the merges in the order they were learned,
     always the earliest-learned pair present.
  3. Compression: bytes per token on held-out text as the vocabulary grows. More merges, fewer tokens
     per text, and a longer sequence fits in a model's context.

Run:  python examples/06_bpe_merges.py [--quick]
In a browser: python -m gpt viz, then its tokenizer page trains BPE on text you type and encodes
it chunk by chunk, one merge at a time (add a run folder, e.g. runs/tiny, to use its tokenizer).
"""
import argparse
import collections
import sys
from pathlib import Path

import regex

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import bpe  # noqa: E402
from bpe.show import bytes_per_token, format_steps, show_tokens, token_text  # noqa: E402

TINY = ("the low lower lowest; the newer newest; the wider widest. "
        "low, lower, lowest: the new, the newer, the newest. ") * 3


def pair_count(tok, text, pair, upto):
    """How often `pair` occurs when the first `upto` merges have been applied to `text` (for the log)."""
    partial = bpe.Tokenizer(tok.pattern, tok.merges[:upto])
    count = 0
    for chunk in regex.findall(tok.pattern, text):      # pairs are counted within each chunk
        ids = partial.encode_ordinary(chunk)
        count += sum(1 for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair)
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus for part 3 (for CI)")
    args = parser.parse_args()

    print("=== 1. the merges, one by one, on a tiny text ===")
    print(f"text ({len(TINY.encode())} bytes): {TINY[:112]!r}...\n")
    tok = bpe.train(TINY, vocab_size=256 + 20)
    for rank, ((left, right), new) in enumerate(tok.merges):
        count = pair_count(tok, TINY, (left, right), rank)
        print(f"merge {rank:2d}: {token_text(tok.token_bytes(left))!r:>8} + {token_text(tok.token_bytes(right))!r:<8}"
              f" -> id {new} {token_text(tok.token_bytes(new))!r:<10} seen {count} times")

    print("\n=== 2. encoding ' lowest' replays the merges, earliest-learned first ===")
    print(format_steps(tok, " lowest"))
    ids = tok.encode("the lowest newer")
    print(f"\n'the lowest newer' -> {ids} -> tokens {show_tokens(tok, 'the lowest newer', color=False)!r}")
    print(f"decode(ids) gives the text back: {tok.decode(ids) == 'the lowest newer'}")

    print("\n=== 3. compression as the vocabulary grows ===")
    import pydoc_data.topics
    corpus = "\n".join(pydoc_data.topics.topics.values())   # English text that ships with Python
    size = 60_000 if args.quick else 300_000
    train_text, held_out = corpus[:size], corpus[size:size + 20_000]
    print(f"training on {len(train_text):,} characters of Python's own docs; measuring on the next 20,000")
    for vocab_size in (256, 300, 500, 1000, 2000):
        t = bpe.train(train_text, vocab_size=vocab_size)
        print(f"vocab {vocab_size:5d}: {bytes_per_token(t, held_out):.2f} bytes per token")
    top = collections.Counter(t.encode_ordinary(held_out)).most_common(8)
    print("most used tokens at vocab 2000:", "  ".join(f"'{token_text(t.token_bytes(i))}'" for i, _ in top))
    print("\nIn a browser: python -m gpt viz  (the tokenizer page: merges with their counts, encoding step by step)")


if __name__ == "__main__":
    main()
