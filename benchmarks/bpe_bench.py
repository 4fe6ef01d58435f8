"""Tokenizer speed, side by side in one run: bpe vs tiktoken vs Hugging Face tokenizers.

    python benchmarks/bpe_bench.py [--data ../shared/data] [--repeats 5]

Measures (medians of alternating runs, wall clock):
- encoding Tiny Shakespeare with GPT-2's vocabulary: bpe (empty chunk cache at the start of each
  run), tiktoken single-thread (`encode`), HF tokenizers (`encode`), and one 100,000-character chunk;
- training vocab 4096 on Tiny Shakespeare: bpe.train vs HF's BpeTrainer (default threads, and with
  TOKENIZERS_PARALLELISM=false);
- the incremental trainer against the naive one on the same chunks (default vocab 320 and 512;
  `--naive-sizes 4096` for the full size, which takes the naive one minutes).
tiktoken and tokenizers are optional, benchmark-only dependencies: a missing one is skipped.
Prints a markdown block for benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import bpe  # noqa: E402
from bpe.gpt2_files import bytes_to_unicode  # noqa: E402
from bpe.train import count_chunks, learn_merges, learn_merges_naive  # noqa: E402


def machine():
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs visible, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def alternate(contenders, repeats):
    """Run each contender once per round, rounds `repeats` times; returns name -> median seconds."""
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t, _ = timed(fn)
            times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load_tiktoken(data):
    try:
        import tiktoken
    except ImportError:
        print("tiktoken not installed: skipped", file=sys.stderr)
        return None
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    encoder = json.loads((data / "gpt2" / "encoder.json").read_text(encoding="utf-8"))
    ranks = {bytes(char_to_byte[c] for c in k): v for k, v in encoder.items() if k != "<|endoftext|>"}
    return tiktoken.Encoding("gpt2-offline", pat_str=bpe.GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def hf_modules():
    try:
        import tokenizers
        from tokenizers import decoders, models, pre_tokenizers, trainers
    except ImportError:
        print("tokenizers not installed: skipped", file=sys.stderr)
        return None
    return tokenizers, models, pre_tokenizers, trainers, decoders


def bench_encode(data, text, repeats, rows):
    ours = bpe.gpt2(data / "gpt2")

    def ours_cold():
        ours._cache.clear()
        return ours.encode(text)

    contenders = {"bpe (this project)": ours_cold}
    tt = load_tiktoken(data)
    if tt is not None:
        assert tt.encode(text) == ours.encode(text), "tiktoken and bpe disagree"
        contenders["tiktoken (1 thread)"] = lambda: tt.encode(text)
    hf = hf_modules()
    if hf is not None:
        tokenizers, models, pre_tokenizers, _, _ = hf
        hf_tok = tokenizers.Tokenizer(models.BPE.from_file(str(data / "gpt2" / "encoder.json"),
                                                           str(data / "gpt2" / "vocab.bpe")))
        hf_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        same = hf_tok.encode(text).ids == ours.encode(text)
        contenders[f"HF tokenizers (ids {'equal' if same else 'differ'})"] = lambda: hf_tok.encode(text)
    med = alternate(contenders, repeats)
    base = med.get("tiktoken (1 thread)")
    n_bytes = len(text.encode("utf-8"))
    for name, t in med.items():
        ratio = f"{t / base:.2f}x" if base else "n/a"
        rows.append(f"| encode Tiny Shakespeare, GPT-2 vocab | {name} | {t * 1000:.0f} ms | "
                    f"{n_bytes / t / 1e6:.2f} MB/s | {ratio} of tiktoken |")
    # a single 100,000-character chunk
    rng = random.Random(0)
    for label, chunk in [('"z" * 100_000', "z" * 100_000),
                         ("100,000 random letters", "".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                                             for _ in range(100_000)))]:
        def ours_long():
            ours._cache.clear()
            return ours.encode(chunk)
        long_contenders = {"bpe (this project)": ours_long}
        if tt is not None:
            long_contenders["tiktoken (1 thread)"] = lambda: tt.encode(chunk)
        med = alternate(long_contenders, repeats)
        for name, t in med.items():
            rows.append(f"| encode one chunk of {label} | {name} | {t * 1000:.0f} ms | | |")


def bench_train(data, text, repeats, rows):
    vocab = 4096
    contenders = {"bpe.train (incremental)": lambda: bpe.train(text, vocab)}
    hf = hf_modules()
    if hf is not None:
        tokenizers, models, pre_tokenizers, trainers, _ = hf

        def hf_train():
            tok = tokenizers.Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator([text], trainer=trainer)
            return tok

        def hf_train_1thread():
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                return hf_train()
            finally:
                del os.environ["TOKENIZERS_PARALLELISM"]

        contenders["HF tokenizers BpeTrainer (default threads)"] = hf_train
        contenders["HF tokenizers BpeTrainer (TOKENIZERS_PARALLELISM=false)"] = hf_train_1thread
    med = alternate(contenders, repeats)
    base = med.get("HF tokenizers BpeTrainer (default threads)")
    for name, t in med.items():
        ratio = f"{t / base:.2f}x" if base else "n/a"
        rows.append(f"| train vocab {vocab} on Tiny Shakespeare | {name} | {t:.2f} s | | "
                    f"{ratio} of HF (default threads) |")
    # where the time goes in ours
    t_count, chunks = timed(lambda: count_chunks(text))
    t_learn, _ = timed(lambda: learn_merges(chunks, vocab - 256))
    rows.append(f"| (split of bpe.train) | count chunks {t_count:.2f} s, learn merges {t_learn:.2f} s | | | |")


def bench_naive(text, rows, sizes=(320, 512)):
    chunks = count_chunks(text)
    for vocab in sizes:
        t_naive, a = timed(lambda: learn_merges_naive(chunks, vocab - 256))
        t_inc = statistics.median(timed(lambda: learn_merges(chunks, vocab - 256))[0] for _ in range(3))
        same = a == learn_merges(chunks, vocab - 256)
        rows.append(f"| learn {vocab - 256} merges (vocab {vocab}), Tiny Shakespeare chunks | naive "
                    f"{t_naive:.2f} s vs incremental {t_inc:.3f} s | | | {t_naive / t_inc:.0f}x speed-up, "
                    f"merges {'identical' if same else 'DIFFER'} |")


def main():
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-sizes", type=int, nargs="*", default=[320, 512],
                        help="vocab sizes for naive vs incremental (4096 takes the naive one minutes)")
    args = parser.parse_args()
    text = (args.data / "tinyshakespeare.txt").read_text(encoding="utf-8")
    rows = ["| task | contender | median time | throughput | ratio |", "| --- | --- | --- | --- | --- |"]
    bench_encode(args.data, text, args.repeats, rows)
    bench_train(args.data, text, args.repeats, rows)
    if args.naive_sizes:
        bench_naive(text, rows, args.naive_sizes)
    print(f"Machine: {machine()}; {args.repeats} alternating rounds, medians.\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
