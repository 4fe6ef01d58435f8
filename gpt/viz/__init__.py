"""The GPT's pages: live training curves, a run replayed, the tokenizer's merges, a model's next token.

    python -m gpt train --viz            # prints http://127.0.0.1:PORT/ : loss, lr, gradient norm,
                                         # tokens/s and each evaluation's sample as they happen
    python -m gpt viz runs/tiny          # a finished run: its curves and gradient norm (metrics.csv),
                                         # its samples (samples.jsonl), its tokenizer and its model
                                         # (also a Hugging Face or GPT-2 folder)

Built on ``tinytensor.viz``'s server and event stream; nothing here is imported unless a page is asked
for (``--viz`` or ``python -m gpt viz``), so training without it pays nothing.
"""
