"""``python -m gpt train``: its flags (each default read from TrainSettings) and the command, which builds
the settings once and hands them to ``gpt.train`` (gpt/training/launch.py: one process or many)."""
import argparse

from ..errors import TrainingError
from ..models import ARCHS, config_class
from ..training.settings import TrainSettings
from ..viz.cli import add_viz_flag, finish as finish_viz, live_page
from .args import add_debug_flag, boolean, nonneg_int, number, positive_int, positive_number

PRESETS = tuple(dict.fromkeys(name for arch in ARCHS for name in config_class(arch).PRESETS))


def add_parser(sub):
    """Register ``train`` on the subparsers of ``python -m gpt``."""
    p = sub.add_parser("train", help="pretrain a GPT on a text file (default: tiny GPT on CPython's help text)",
                       description="Pretrain a GPT. With no flags: the tiny preset on CPython's help topics, "
                                   "a BPE tokenizer trained first and saved beside the checkpoint. Ctrl-C, "
                                   "SIGTERM, SIGHUP or a closed output pipe saves a checkpoint and stops "
                                   "(exit 130, 143, 129, 141).")
    d = TrainSettings()

    def flag(group, name, text, shown=None, **kw):
        """A flag whose default lives in TrainSettings (argparse records only what was passed); the help
        ends with that default, or with ``shown`` where it depends on other settings."""
        value = shown if shown is not None else getattr(d, name[2:].replace("-", "_"))
        group.add_argument(name, default=argparse.SUPPRESS, help=f"{text} (default: {value})", **kw)

    preset = "the preset's; tiny {}".format
    lrs = ", ".join(f"{name} {lr:g}" for name, lr in TrainSettings.PRESET_LR.items())
    g = p.add_argument_group("data")
    flag(g, "--data", "UTF-8 text to train on", "CPython's help topics", metavar="FILE")
    flag(g, "--tokenizer", "a bpe tokenizer file, or a folder with GPT-2's encoder.json and vocab.bpe",
         "train a BPE tokenizer of --vocab-size on the data", metavar="PATH")
    flag(g, "--vocab-size", "size of the tokenizer trained here", "tiny 2048, else the preset's", type=positive_int)
    flag(g, "--stride", "tokens between window starts", "the context length", type=positive_int)
    flag(g, "--val-fraction", "share of tokens held out", type=number(0, 0.99))
    g = p.add_argument_group("model")
    flag(g, "--arch", "model family: GPT-2, Llama 3 or Qwen3 (gpt/models/)", choices=ARCHS)
    flag(g, "--preset", "model shape of the family: tiny, or a published size (gpt2-small, llama3.2-1b, "
         "qwen3-0.6b, ...)", choices=PRESETS, metavar="NAME")
    flag(g, "--context-length", "tokens per window", preset(128), type=positive_int)
    flag(g, "--emb-dim", "width of every hidden state", preset(128), type=positive_int)
    flag(g, "--n-layers", "transformer blocks", preset(4), type=positive_int)
    flag(g, "--n-heads", "attention heads, dividing --emb-dim", preset(4), type=positive_int)
    flag(g, "--n-kv-heads", "key/value heads, dividing --n-heads (llama, qwen3: grouped-query attention)",
         preset(2), type=positive_int)
    flag(g, "--drop-rate", "dropout probability", "the preset's, 0", type=number(0, 0.99))
    flag(g, "--qkv-bias", "a bias on the query/key/value projection (gpt2 only)",
         "the preset's; tiny false, GPT-2 true",
         type=boolean, metavar="BOOL")
    flag(g, "--tie-weights", "the output head shares the token embedding", "the preset's; tiny true, GPT-2 false",
         type=boolean, metavar="BOOL")
    flag(g, "--init", "weight init: GPT-2's N(0, 0.02), or PyTorch's layer defaults as in the book",
         choices=["gpt2", "torch"])
    g = p.add_argument_group("optimisation")
    flag(g, "--max-steps", "optimizer steps", type=positive_int)
    flag(g, "--epochs", "passes over the data, instead of --max-steps", "off, --max-steps counts", type=positive_number)
    flag(g, "--batch-size", "windows per micro-batch; under mpiexec the global one, split over the processes",
         type=positive_int)
    flag(g, "--grad-accum", "micro-batches per step", type=positive_int)
    flag(g, "--lr", "peak learning rate: larger models need smaller steps; the GPT-2 sizes take the rates the "
         "GPT-3 paper used for models of their size", f"the preset's: {lrs}", type=positive_number)
    flag(g, "--min-lr", "final learning rate of the cosine", "lr / 10", type=number(0))
    flag(g, "--warmup-steps", "linear warmup steps", "5%% of the steps, at most 100", type=nonneg_int)
    flag(g, "--schedule", "the learning rate after warmup", choices=["cosine", "constant"])
    flag(g, "--weight-decay", "AdamW weight decay on the weight matrices", type=number(0))
    flag(g, "--decay-all", "decay biases, norms and embeddings too", "off, weight matrices only", action="store_true")
    flag(g, "--beta2", "AdamW beta2", type=number(0, 0.9999))
    flag(g, "--grad-clip", "max gradient norm, 0 for none", type=number(0))
    flag(g, "--seed", "random seed, an integer >= 0", type=nonneg_int)
    flag(g, "--zero", "under mpiexec -n N: each process keeps only its 1/N of AdamW's moments (ZeRO-1), same "
         "numbers", "off", action="store_true")
    g = p.add_argument_group("run")
    flag(g, "--out", "checkpoint folder", metavar="DIR")
    g.add_argument("--resume", action="store_true", help="continue the checkpoint in --out exactly (default: off)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --out holds a checkpoint (default: off, refuse)")
    flag(g, "--eval-every", "steps between evaluations", type=positive_int)
    flag(g, "--eval-batches", "batches per evaluation", type=positive_int)
    flag(g, "--save-every", "steps between checkpoints", type=positive_int)
    flag(g, "--sample-prompt", "prompt of the sample shown at each evaluation", repr(d.sample_prompt))
    flag(g, "--sample-tokens", "the sample's length in tokens", type=nonneg_int)
    flag(g, "--device", "cpu or cuda")
    flag(g, "--dtype", "precision of the products: bfloat16 or float16 run them under tt.autocast with float32 "
         "master weights (float16 with loss scaling; bfloat16 needs --device cuda)", choices=["float32", "bfloat16",
                                                                                              "float16"])
    g.add_argument("--reference-ops", action="store_true",
                   help="run on the readable twin ops (tt.use_reference_ops(True)) instead of the fused ones: "
                        "slower, the same numbers to rounding (default: off)")
    add_viz_flag(g)
    add_debug_flag(p)
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(ns):
    """Build the run's TrainSettings from the flags given (the rest keep the dataclass's defaults) and train."""
    import tinytensor as tt
    from tinytensor.schedule import heap

    from ..training.launch import train
    given = {k: v for k, v in vars(ns).items() if k in TrainSettings.__dataclass_fields__}
    if ns.reference_ops:
        use = getattr(tt, "use_reference_ops", None)
        if use is None:
            raise TrainingError("--reference-ops: this tinytensor has no reference ops (tt.use_reference_ops)")
        use(True)
    heap.tune()                                # training's temporaries reuse freed memory (tinytensor/heap.py)
    out = given.get("out", TrainSettings.out)
    page = live_page(ns, out)                  # --viz: the live page (gpt/viz), else None and nothing imported
    hooks = {"on_step": page.on_step, "on_eval": page.on_eval} if page else {}
    try:
        result = train(TrainSettings(**given), resume=ns.resume, overwrite=ns.overwrite, given=tuple(given), **hooks)
    finally:
        finish_viz(page, out)
    return result["exit_code"]
