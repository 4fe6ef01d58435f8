"""Chat prompts for instruction-tuned Llama 3 and Qwen3 folders, written out by hand instead of Jinja.

A chat model was trained on conversations laid out one way, and its folder says how in a Jinja template
(tokenizer_config.json's "chat_template", or chat_template.jinja). Running Jinja would need a template
engine; the two layouts below cover these families' instruction-tuned models, so a template is read only
to tell which one it is, and one that is neither is refused with a clear message (never a wrong prompt).

    Llama 3   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
              <|start_header_id|>user<|end_header_id|>\\n\\n{text}<|eot_id|>
              <|start_header_id|>assistant<|end_header_id|>\\n\\n                   (the model answers, then <|eot_id|>)
              Llama 3.1 / 3.2 templates always open with a system turn holding "Cutting Knowledge Date:
              December 2023" and today's date before any system text; contents are trimmed.
    ChatML    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{text}<|im_end|>\\n
    (Qwen3)   <|im_start|>assistant\\n                                           (the model answers, then <|im_end|>)
              Earlier assistant turns keep only what follows their </think>; with thinking off, the
              answer is opened with an empty <think>\\n\\n</think>\\n\\n (thinking-only models whose
              template always opens <think>\\n get that instead).

    fmt = chat_format(folder, tok)
    ids = fmt.encode([{"role": "user", "content": "Hi"}])     # prompt ids; generate until fmt.stop_ids
"""
import codecs
import datetime
import os

from .. import files
from ..weights.gpt2 import read_json


class ChatFormat:
    """One of the layouts above: ``render(messages)`` -> prompt text, ``encode(messages)`` -> its ids,
    ``stop_ids``: the ids that end the model's turn."""

    def __init__(self, kind, tok, dated=False, thinking=True, opens_think=False):
        self.kind, self.tok, self.dated, self.thinking = kind, tok, dated, thinking
        self.opens_think = opens_think              # the template itself opens the answer with <think>
        end = "<|eot_id|>" if kind == "llama3" else "<|im_end|>"
        if end not in tok.special_tokens:
            raise ValueError(f"the chat template is {kind}'s, but the tokenizer has no {end} token")
        self.stop_ids = [tok.special_tokens[end]]

    def render(self, messages, today=None):
        """The prompt text of ``messages`` (dicts with "role" and "content"), ending where the assistant answers."""
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError("chat: each message needs a text 'role' and 'content'")
        return self._llama3(messages, today) if self.kind == "llama3" else self._chatml(messages)

    def encode(self, messages, today=None):
        return self.tok.encode(self.render(messages, today), allowed_special="all")

    def _llama3(self, messages, today):
        turn = "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>".format
        out = "<|begin_of_text|>"
        if self.dated:                              # Llama 3.1 / 3.2: the system turn is always there
            system = ""
            if messages and messages[0]["role"] == "system":
                system, messages = messages[0]["content"].strip(), messages[1:]
            date = (today or datetime.date.today()).strftime("%d %b %Y")
            out += turn("system", f"Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n{system}")
        out += "".join(turn(m["role"], m["content"].strip()) for m in messages)
        return out + "<|start_header_id|>assistant<|end_header_id|>\n\n"

    def _chatml(self, messages):
        out = ""
        for m in messages:
            content = m["content"]
            if m["role"] == "assistant" and "</think>" in content:    # earlier answers lose their reasoning
                content = content.split("</think>")[-1].lstrip("\n")
            out += f"<|im_start|>{m['role']}\n{content}<|im_end|>\n"
        out += "<|im_start|>assistant\n"
        if self.opens_think:
            return out + "<think>\n"
        return out if self.thinking else out + "<think>\n\n</think>\n\n"


def read_template(folder):
    """The folder's chat template text, or None when it has none."""
    path = os.path.join(folder, "chat_template.jinja")
    if os.path.lexists(path):
        return files.read_text(path, files.MAX_JSON, "chat_template.jinja")
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.lexists(path):
        return None
    template = read_json(path).get("chat_template")
    if isinstance(template, list):                  # [{"name": "default", "template": ...}, ...]
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    return template if isinstance(template, str) else None


def chat_format(folder, tok, thinking=True):
    """The ChatFormat of a Hugging Face folder's chat template, or a ValueError saying why there is none."""
    template = read_template(folder)
    if template is None:
        raise ValueError(f"{folder} has no chat template (a base model, not an instruction-tuned one?): "
                         "use `python -m gpt sample --hf` with a prompt of your own")
    if "<|start_header_id|>" in template and "<|eot_id|>" in template:
        return ChatFormat("llama3", tok, dated="Cutting Knowledge Date" in template)
    if "<|im_start|>" in template and "<|im_end|>" in template:
        return ChatFormat("chatml", tok, thinking=thinking or "enable_thinking" not in template,
                          opens_think="'<|im_start|>assistant\\n<think>\\n'" in template)
    raise ValueError(f"the chat template in {folder} is neither Llama 3's nor ChatML (Qwen's), the two this code "
                     "writes out; use `python -m gpt sample --hf` with the prompt laid out by hand")


def reply(model, fmt, messages, max_new_tokens=256, on_text=None, **sampling):
    """The model's answer (text) to ``messages`` laid out by ``fmt``: generation stops at the format's end of
    turn (``fmt.stop_ids``), which is not part of the answer. ``on_text(piece)`` receives the text as it
    comes; ``sampling``: generate's temperature, top_k, top_p, seed. For a `chat --hf` command:

        model, tok, _, _ = gpt.weights.hf.load_folder(folder)
        fmt = chat_format(folder, tok)
        history.append({"role": "assistant", "content": reply(model, fmt, history)})
    """
    from .generate import generate
    prompt = fmt.encode(messages)
    room = model.cfg.context_length - len(prompt)
    if room < 1:
        raise ValueError(f"chat: the conversation is {len(prompt)} tokens, the model's context "
                         f"{model.cfg.context_length}; start a new one")
    new, text = [], codecs.getincrementaldecoder("utf-8")(errors="replace")   # whole characters only

    def take(ids):
        token = int(ids[0])
        if token not in fmt.stop_ids:
            new.append(token)
            if on_text is not None:
                on_text(text.decode(fmt.tok.decode_bytes([token])))
    generate(model, [prompt], max_new_tokens=min(max_new_tokens, room), eos_id=fmt.stop_ids, on_token=take,
             vocab_size=fmt.tok.n_vocab, **sampling)
    rest = text.decode(b"", final=True)                     # a character the answer ended in the middle of
    if rest and on_text is not None:
        on_text(rest)
    return fmt.tok.decode(new)
