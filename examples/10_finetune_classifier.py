"""10 - Fine-tune a pretrained GPT into a classifier: documentation prose vs source-code comments.

The two classes are English that ships with Python: sentences of its documentation ("doc") and
comments of its standard library's source ("comment"). gpt.finetune.make_data builds them offline
(`python -m gpt make-data classify --task doc-vs-comment`); `python -m gpt finetune classify` runs
the same steps on any labelled file. This is the harder of make-data's two tasks: many comments read
like the docs, so no model gets every line right (the README's doc-vs-code reaches 0.95 and more).

The steps, each a call into gpt.finetune:
  1. replace the language-model head (emb_dim -> vocab) with a fresh 2-class head (emb_dim -> 2);
  2. choose what trains: "last" (the head, the last block and the final LayerNorm: the usual choice
     for a large pretrained model), "all", or "lora" (low-rank adapters). This base model is tiny and
     briefly trained, so its features are weak and we train "all" (try --train last to compare);
  3. read the class from the hidden state of the *last* token of each text: in a causal model it is
     the only position that has attended to the whole text;
  4. train with cross-entropy on the class, then evaluate on held-out lines.

What to look at:
  * Accuracy before training is printed beside chance (always answering the commonest label of the
    test lines): the new head is random, so its accuracy can land anywhere near or below chance.
  * Test accuracy climbing well above chance, while train accuracy runs ahead of it: with a few
    hundred texts per class the model starts to memorise, and the gap is overfitting. When held-out
    accuracy falls in the second epoch the example says so: that is the same memorising.
  * The predictions on new lines at the end, each against the label its source would give it, right
    or wrong: a model at about 80% test accuracy gets about one line in five wrong, sometimes sure of it.

Run:  python examples/10_finetune_classifier.py [--quick] [--checkpoint DIR]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
from gpt.finetune import classify, data_classify, make_data, pipeline  # noqa: E402
from _tiny_base import base_checkpoint  # noqa: E402  (examples/_tiny_base.py)

NEW_LINES = [                                  # (the label its source would give, a line the model never saw)
    ("doc", "Return the number of items in a container, or raise TypeError if it has no length."),
    ("comment", "XXX this is a hack, remove it once the parser handles the old syntax"),
    ("doc", "The optional argument gives the initial value of the counter."),
    ("comment", "we can't use the fast path here because the buffer may be shared"),
]


def what_happened(history):
    """One line on held-out accuracy across the epochs: rising, or falling while train accuracy rose."""
    if len(history) < 2:
        return None
    a, b = history[-2], history[-1]
    if b["test_accuracy"] < a["test_accuracy"] and b["train_accuracy"] > a["train_accuracy"]:
        return (f"test accuracy fell in epoch {b['epoch']} ({a['test_accuracy']:.3f} -> {b['test_accuracy']:.3f}) "
                f"while train accuracy rose ({a['train_accuracy']:.3f} -> {b['train_accuracy']:.3f}): the model "
                "began to memorise its training lines (overfitting); fewer epochs or more data help")
    return f"test accuracy {a['test_accuracy']:.3f} -> {b['test_accuracy']:.3f} over the last epoch"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, one epoch (for CI)")
    parser.add_argument("--checkpoint", type=Path, help="start from this checkpoint folder (default: the shared "
                                                            "base model, see examples/_tiny_base.py)")
    parser.add_argument("--train", choices=classify.MODES, default="all", help="what trains (default all)")
    args = parser.parse_args()
    n_per_class, epochs = (40, 1) if args.quick else (400, 2)

    with tempfile.TemporaryDirectory(prefix="tinytensor-10-") as scratch:     # used by --quick only
        folder = base_checkpoint(args.checkpoint, quick=args.quick, scratch=scratch)
        tt.manual_seed(0)
        model, tok, what = pipeline.load_base(str(folder))

    rows = make_data.make_classify(n_per_class=n_per_class, seed=0, task="doc-vs-comment")   # [(label, text)]
    labels = data_classify.label_ids(rows)                                  # ['comment', 'doc']
    train_rows, val_rows, test_rows = data_classify.split(rows, seed=0)
    max_length = 48
    train_set, val_set, test_set = (data_classify.encode(part, tok, labels, max_length)
                                    for part in (train_rows, val_rows, test_rows))
    print(f"data: {len(rows)} texts, labels {labels}; {len(train_set)} train / {len(val_set)} val / "
          f"{len(test_set)} test; e.g.")
    for label, text in rows[:4]:
        print(f"  {label:8s} {text[:90]!r}")

    classify.replace_head(model, len(labels))                               # step 1
    trainable = classify.set_trainable(model, args.train)                   # step 2
    n_train = sum(p.size for p in model.parameters() if p.requires_grad)
    n_all = sum(p.size for p in model.parameters())
    groups = sorted({n.split(".")[0] if not n.startswith("blocks.") else ".".join(n.split(".")[:2]) for n in trainable})
    print(f"\n--train {args.train}: {n_train:,} of {n_all:,} parameters train ({n_train / n_all:.0%}): {', '.join(groups)}")

    base_rate, commonest = classify.chance(test_set, len(labels))
    acc, loss = classify.evaluate(model, test_set, 32, tok.eot_id)
    print(f"before fine-tuning: test accuracy {acc:.1%} (loss {loss:.3f}) from a random head; chance is "
          f"{base_rate:.1%} (always answering {labels[commonest]!r}, the commonest test label)\n")
    t0 = time.perf_counter()
    history = classify.train(model, train_set, val_set, test_set, pad_id=tok.eot_id, epochs=epochs,  # steps 3-4
                             lr=1e-3, batch_size=8, seed=0)
    acc, loss = classify.evaluate(model, test_set, 32, tok.eot_id)
    print(f"after fine-tuning ({time.perf_counter() - t0:.0f}s): test accuracy {acc:.1%} (loss {loss:.3f}) "
          f"against chance {base_rate:.1%}")
    note = what_happened(history)
    if note:
        print(note)

    print("\npredictions on new lines (label its source gives, prediction, probability):")
    texts = [text for _, text in NEW_LINES]
    right = 0
    for (label, probs), (truth, text) in zip(classify.predict(model, tok, texts, labels, max_length, tok.eot_id),
                                             NEW_LINES):
        right += label == truth
        print(f"  {truth:8s} {label:8s} p={max(probs):.2f} {'right' if label == truth else 'WRONG'}  {text!r}")
    print(f"{right} of {len(NEW_LINES)} right; at {acc:.0%} test accuracy about {1 - acc:.0%} of new lines come out "
          "wrong, and a wrong answer can be a confident one")


if __name__ == "__main__":
    main()
