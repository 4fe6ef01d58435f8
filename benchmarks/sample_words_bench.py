"""Does the default run's last sample read as English? The share of its words found in the training text.

    python benchmarks/sample_words_bench.py                        # `python -m gpt train`'s defaults, 5 seeds
    python benchmarks/sample_words_bench.py --seeds 1 2 --set vocab_size=2048 --set max_steps=520
    python benchmarks/sample_words_bench.py --samplers 0.8:40,0.6:20 --draws 8    # other ways to draw samples

For each seed it trains as ``python -m gpt train --seed S`` does (in this process, into a temporary
folder; ``--set FIELD=VALUE`` changes a TrainConfig field, as the flag of that name would), takes the last
progress sample the run printed, and counts its words (runs of ASCII letters, the prompt included) that
occur, with the same case, somewhere in the training text. It also reports the compute of the run
(6 x parameters + attention, times the tokens it trained on, as nanoGPT's MFU estimate counts it), so
that levers can be compared at equal compute rather than by wall time on a busy machine.

``--samplers T:K,...`` also draws ``--draws`` more samples from each final model at temperature T and
top-k K (K 0: no top-k; T 0: greedy), to compare ways of drawing the samples on the same weights.
No number is asserted: the README quotes this script's output.
"""
import argparse
import dataclasses
import io
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORD = re.compile(r"[A-Za-z]+")


def words(text):
    """The words of ``text``: its runs of ASCII letters."""
    return WORD.findall(text)


def real_share(sample, known):
    """The share of ``sample``'s words found in the set ``known`` (None when it has no words)."""
    ws = words(sample)
    return sum(w in known for w in ws) / len(ws) if ws else None


def last_sample(printed):
    """The last ``  sample: ...`` block of a run's printed output (its later lines are indented)."""
    head = "  sample: "
    start = printed.rfind("\n" + head)
    if start < 0:
        raise ValueError("the run printed no sample")
    lines = printed[start + 1:].split("\n")
    block = [lines[0][len(head):]]
    for line in lines[1:]:
        if line.startswith(" " * len(head)):
            block.append(line[len(head):])
        elif line == "":
            block.append("")
        else:
            break
    return "\n".join(block).rstrip("\n")


def flops(model, cfg, tokens):
    """Training flops: (6 x parameters less the position table + 12 x layers x context x width) per token."""
    n = model.num_parameters() - sum(p.size for name, p in model.named_parameters() if name.startswith("pos_emb."))
    return (6 * n + 12 * cfg.n_layers * cfg.context_length * cfg.emb_dim) * tokens


def parse_set(items):
    """``["vocab_size=2048", ...]`` -> {"vocab_size": 2048}, each value typed as its TrainConfig field."""
    from gpt.training.settings import TrainConfig
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {item}: expected FIELD=VALUE with a TrainConfig field")
        kind = fields[name].type if isinstance(fields[name].type, str) else fields[name].type.__name__
        try:
            out[name] = value.lower() in ("1", "true", "yes") if kind == "bool" else \
                {"str": str, "int": int, "float": float}[kind](value)
        except ValueError:
            raise SystemExit(f"--set {item}: {name} takes a {kind}") from None
    return out


def parse_samplers(text):
    """"0.8:40,0.6:0" -> [(0.8, 40), (0.6, None)]."""
    out = []
    for part in filter(None, text.split(",")):
        t, _, k = part.partition(":")
        out.append((float(t), int(k) or None if k else None))
    return out


def one_run(seed, overrides, samplers, draws, folder):
    """Train one seed; returns its last sample, its share, the compute and the extra samplers' shares."""
    import bpe
    import gpt
    from gpt.data import default_corpus, read_text
    from gpt.generation.generate import generate
    a = gpt.TrainConfig(seed=seed, out=str(Path(folder) / f"seed{seed}"), **overrides)
    printed = io.StringIO()
    began = time.perf_counter()
    summary = gpt.train(a, stream=printed)
    wall = time.perf_counter() - began
    text = read_text(a.data) if a.data else default_corpus()
    known = set(words(text))
    sample = last_sample(printed.getvalue())
    model, meta = gpt.load_checkpoint(a.out)
    tok = bpe.Tokenizer.load(str(Path(a.out) / "tokenizer.bpe"))
    cfg = model.cfg
    tokens = summary["step"] * a.batch_size * cfg.context_length
    result = {"seed": seed, "sample": sample, "share": real_share(sample, known), "wall_s": wall,
              "flops": flops(model, cfg, tokens), "params": model.num_parameters(), "val_loss": summary["history"][-1]["val_loss"],
              "samplers": {}}
    prompt = tok.encode(a.sample_prompt)
    for t, k in samplers:
        shares = []
        for d in range(draws):
            out = generate(model, [prompt], max_new_tokens=a.sample_tokens, temperature=t, top_k=k, seed=seed + 1000 * d)
            share = real_share(tok.decode(out[0].tolist()), known)
            if share is not None:
                shares.append(share)
        result["samplers"][f"{t}:{k or 0}"] = statistics.mean(shares) if shares else None
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2, 3, 4], help="training seeds (1234 is the default run's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a TrainConfig field from its default (repeatable), e.g. vocab_size=2048")
    p.add_argument("--samplers", default="", help="more ways to draw samples from each final model, T:K,... "
                   "(temperature, top-k; 0 for none)")
    p.add_argument("--draws", type=int, default=5, help="samples per extra sampler and seed")
    args = p.parse_args(argv)
    overrides = parse_set(args.set)
    samplers = parse_samplers(args.samplers)
    print(f"settings: {overrides or 'the defaults'}; seeds {args.seeds}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            r = one_run(seed, overrides, samplers, args.draws, folder)
            results.append(r)
            extra = "  ".join(f"{name} {s:.0%}" for name, s in r["samplers"].items() if s is not None)
            print(f"seed {seed}: {r['share']:.0%} real words | val loss {r['val_loss']:.3f} | {r['params']:,} params, "
                  f"{r['flops'] / 1e12:.2f} Tflop | {r['wall_s']:.0f} s" + (f" | {extra}" if extra else ""), flush=True)
            print("  " + r["sample"].replace("\n", "\n  "), flush=True)
    shares = [r["share"] for r in results if r["share"] is not None]
    print(f"last sample's real words over {len(shares)} seeds: mean {statistics.mean(shares):.1%}, "
          f"min {min(shares):.0%}, max {max(shares):.0%}; val loss mean "
          f"{statistics.mean(r['val_loss'] for r in results):.3f}; compute {results[0]['flops'] / 1e12:.2f} Tflop per run")
    for name in (samplers and results[0]["samplers"]):
        vals = [r["samplers"][name] for r in results if r["samplers"][name] is not None]
        print(f"  sampler T:K {name}: mean {statistics.mean(vals):.1%} over {len(vals)} seeds x {args.draws} draws")


if __name__ == "__main__":
    main()
