"""11 - Instruction tuning: teach a pretrained GPT to answer prompts in a fixed format.

Each training example is an Alpaca-style prompt followed by the wanted answer and an end-of-text
token. The model is trained with the ordinary next-token loss, but only on the answer: the prompt
positions get the target -100 (ignore_index), so cross-entropy skips them. Afterwards it answers
held-out prompts greedily, stopping at end-of-text, and each answer is checked for an exact match.
The tasks come from gpt.finetune.make_data (offline, answers checkable): "field" (copy one field of a
record) and "reverse" (reverse a list of words). `python -m gpt finetune instruct` runs the same steps on
all four task kinds, with a bigger model and longer training.

What to look at:
  * The prompt format, and the targets of one example: '.' marks an ignored (prompt) position; the
    first kept target is the first token of the answer, the last one is end-of-text.
  * The loss on the answers falling, and what the answers look like before and after: the form of
    an answer (words, then end-of-text) is picked up before its content.
  * Exact match per task kind, before and after, each beside its chance score (always giving the
    commonest training answer of the kind, near 0 for both): in half a minute this small model
    learns to reverse about half the lists and to copy the right field about a third of the time. Yes/no questions
    ("is this word in the list?", in `python -m gpt finetune instruct`) stay at their chance of one
    half at this size: telling which skills a model picked up is what the chance score is for.

Run:  python examples/11_instruction_tuning.py [--quick] [--checkpoint DIR]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
from gpt.finetune import data_instruct, instruct, make_data, pipeline  # noqa: E402
from _tiny_base import base_checkpoint  # noqa: E402  (examples/_tiny_base.py)


def show_targets(tok, item, pad_id):
    """The last positions of one collated example: input token -> target token, '.' = ignored."""
    inputs, targets = data_instruct.collate([item], pad_id, mask_prompt=True)
    ids, prompt_len = item
    start = max(prompt_len - 6, 0)
    print(f"  {len(ids)} tokens, the prompt is {prompt_len}; positions {start}..{inputs.shape[1] - 1} "
          f"(target . : a prompt position, target {data_instruct.IGNORE_INDEX}, which the loss skips):")
    for t in range(start, inputs.shape[1]):
        target = int(targets[0, t])
        shown = "." if target == data_instruct.IGNORE_INDEX else repr(tok.decode([target]))
        print(f"    {t:3d}  input {tok.decode([int(inputs[0, t])])!r:12} -> target {shown}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps and answers (for CI)")
    parser.add_argument("--checkpoint", type=Path, help="start from this checkpoint folder (default: the shared "
                                                            "base model, see examples/_tiny_base.py)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of training at most (default: none, 10 epochs, about 25 s on 2 cores); with a "
                             "budget the learning rate follows the clock, so results vary with the machine")
    args = parser.parse_args()
    n_entries, n_test, budget = (48, 4, None) if args.quick else (800, 40, args.budget)

    with tempfile.TemporaryDirectory(prefix="tinytensor-11-") as scratch:     # used by --quick only
        folder = base_checkpoint(args.checkpoint, quick=args.quick, scratch=scratch)
        tt.manual_seed(0)
        model, tok, what = pipeline.load_base(str(folder))
    eot = tok.eot_id

    entries = make_data.make_instruct(n_entries, seed=0, kinds=("field", "reverse"))
    train_e, val_e, test_e = data_instruct.split(entries, seed=0)
    test_e = test_e[:n_test]
    train_items = [data_instruct.encode_entry(e, tok) for e in train_e]
    val_items = [data_instruct.encode_entry(e, tok) for e in val_e]
    print(f"\n{len(train_e)} train / {len(val_e)} val / {len(test_e)} test entries; one of them, as the model sees it:")
    print("  " + (data_instruct.format_prompt(train_e[0]) + train_e[0]["output"] + "<|endoftext|>").replace("\n", "\n  "))
    show_targets(tok, train_items[0], eot)

    rows, before = instruct.answer_all(model, tok, test_e, eot, max_new_tokens=12)
    print("\nbefore instruction tuning:")
    for r in rows[:3]:
        print(f"  {r['kind']:6s} {r['input']!r} -> {r['response']!r}   (expected {r['output']!r})")

    print("\ntraining on the answers only (mask_prompt=True)" + (f", at most {budget:.0f}s:" if budget else ":"))
    t0 = time.perf_counter()
    result = instruct.train(model, train_items, val_items, pad_id=eot, epochs=1 if args.quick else 10, lr=3e-3,
                            batch_size=8, mask_prompt=True, warmup=5, max_seconds=budget,
                            eval_every=None if args.quick else 100, max_length=model.cfg.context_length)
    print(f"{result['steps']} steps in {time.perf_counter() - t0:.0f}s; validation loss {result['val_loss']:.3f}")

    rows, report = instruct.answer_all(model, tok, test_e, eot, max_new_tokens=12)
    print("\nafter instruction tuning:")
    for r in rows[:6]:
        print(f"  {'ok ' if r['correct'] else 'no '} {r['kind']:6s} {r['input']!r} -> {r['response']!r}"
              f"   (expected {r['output']!r})")
    chance = instruct.chance_baseline(train_e, test_e)
    kinds = ", ".join(f"{k} {v:.0%} of {report['n_by_kind'][k]} (chance {chance['by_kind'][k]:.0%})"
                      for k, v in report["exact_match_by_kind"].items())
    print(f"\nexact match on {report['n']} held-out prompts: {before['exact_match']:.0%} before,"
          f" {report['exact_match']:.0%} after ({kinds})")


if __name__ == "__main__":
    main()
