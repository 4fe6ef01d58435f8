"""One tokenizer loader for every command (gpt/weights/tokenizer.py): a file or a folder of any kind we read."""
import shutil
from pathlib import Path

import pytest

import bpe
from gpt.errors import FinetuneError, TrainingError
from gpt.weights.tokenizer import load_tokenizer

LLAMA3 = Path(__file__).resolve().parents[2] / "fixtures" / "tokenizers" / "llama3"


@pytest.fixture(scope="module")
def tok():
    return bpe.train("the cat sat on the mat, the end. " * 20, 270, special_tokens=("<|endoftext|>",))


def test_a_bpe_file_and_a_run_folder_of_ours(tmp_path, tok):
    tok.save(tmp_path / "tokenizer.bpe")
    for path in (tmp_path / "tokenizer.bpe", tmp_path):                  # the file, or the run folder holding it
        loaded = load_tokenizer(path)
        assert loaded.encode("the cat") == tok.encode("the cat") and loaded.n_vocab == tok.n_vocab


def test_a_hugging_face_tokenizer_json_or_its_folder(tmp_path):
    shutil.copy(LLAMA3 / "tokenizer.json", tmp_path / "tokenizer.json")
    want = bpe.from_hf(str(LLAMA3 / "tokenizer.json")).encode("Hello there")
    for path in (tmp_path / "tokenizer.json", tmp_path):               # the file, or a model folder holding it
        assert load_tokenizer(path).encode("Hello there") == want


def test_gpt2_s_files_in_a_folder(tmp_path, shared_data):
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(shared_data / "gpt2" / name, tmp_path / name)
    assert load_tokenizer(tmp_path).encode("Hello world") == [15496, 995]


def test_what_is_missing_is_said_as_the_caller_s_error(tmp_path):
    with pytest.raises(TrainingError, match="no such tokenizer file or folder"):
        load_tokenizer(tmp_path / "nothing")
    with pytest.raises(FinetuneError, match=f"{tmp_path} holds no tokenizer: expected tokenizer.bpe"):
        load_tokenizer(tmp_path, FinetuneError)
