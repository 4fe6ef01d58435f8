"""Tokenizers from files and folders: the one loader every command uses, and what `sample --hf FOLDER`
needs from a Hugging Face folder besides the weights (what goes in front of a prompt, the ids that end a text).

    load_tokenizer(path)      a tokenizer file (bpe's own, or a Hugging Face tokenizer.json), or a folder: a
                              run of ours (tokenizer.bpe), a Hugging Face folder, or GPT-2's files

    tokenizer.json            bpe.from_hf (byte-level BPE: GPT-2, Llama 3, Qwen); GPT-2 folders may have
                              OpenAI's encoder.json + vocab.bpe instead
    its post-processor        the ids put in front of every text (Llama 3's <|begin_of_text|>), as
                              transformers' tokenizer(text) does
    generation_config.json    eos_token_id: one id or a list (Llama 3 Instruct stops at any of three);
    or config.json            else config.json's; else the tokenizer's end-of-text token

These files are untrusted like the rest of the folder: bounded reads, one-line errors naming the file.
"""
import json
import os

from .. import files
from ..errors import TrainingError
from ..training import checkpoint as ckpt
from .gpt2 import read_json


def find_tokenizer(folder):
    """The folder's tokenizer: tokenizer.json, or GPT-2's encoder.json and vocab.bpe; None when it has neither."""
    import bpe
    path = os.path.join(folder, "tokenizer.json")
    if os.path.lexists(path):
        files.check_regular(path, files.MAX_TOKENIZER, "tokenizer.json")
        return bpe.from_hf(path)
    enc, merges = os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")
    if os.path.isfile(enc) and os.path.isfile(merges):
        return bpe.gpt2(enc, merges)
    return None


def load_tokenizer(path, error=TrainingError):
    """The tokenizer at ``path``: a file saved by bpe (``Tokenizer.save``) or a Hugging Face tokenizer.json;
    or a folder holding one: a run of ours (tokenizer.bpe beside checkpoint.json), a Hugging Face folder
    (tokenizer.json), or GPT-2's encoder.json and vocab.bpe. What is missing is said as ``error``."""
    import bpe
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.lexists(os.path.join(path, ckpt.TOKENIZER)):
            return bpe.Tokenizer.load(ckpt.tokenizer_path(path))
        tok = find_tokenizer(path)
        if tok is None:
            raise error(f"{path} holds no tokenizer: expected {ckpt.TOKENIZER}, a tokenizer.json, or GPT-2's "
                        "encoder.json and vocab.bpe (fetch them with bpe.download_gpt2(folder))")
        return tok
    if not os.path.isfile(path):
        raise error(f"no such tokenizer file or folder: {path}")
    if path.endswith(".json"):
        return bpe.from_hf(path)
    return bpe.Tokenizer.load(path)


def stop_ids(folder, tok):
    """The ids that end a text, as a list (empty when the folder names none and the tokenizer has no
    end-of-text token)."""
    for name in ("generation_config.json", "config.json"):
        path = os.path.join(folder, name)
        if not os.path.lexists(path):
            continue
        value = read_json(path).get("eos_token_id")
        if value is None:
            continue
        ids = value if isinstance(value, list) else [value]
        if not ids or not all(type(i) is int and 0 <= i < tok.n_vocab for i in ids):
            raise ValueError(f"{path}: eos_token_id {json.dumps(value)[:60]} is not a token id of the tokenizer "
                             f"(0..{tok.n_vocab - 1}) or a list of them")
        return ids
    for name in ("<|endoftext|>", "<|end_of_text|>"):
        if name in tok.special_tokens:
            return [tok.special_tokens[name]]
    return []


def prompt_prefix(tok):
    """The ids the original library puts in front of a text (``tok.template``'s first part)."""
    return list(getattr(tok, "template", ([], []))[0])
