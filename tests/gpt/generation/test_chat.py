"""``python -m gpt chat``: one-shot and interactive, the Alpaca template the model was tuned on, and what
it (and ``sample``) say when given a checkpoint of another kind."""
import io
import json

import pytest

import bpe
import tinytensor as tt
from gpt.training import checkpoint as ckpt
from gpt.__main__ import main as gpt_main
from gpt.generation.chat import answer
from gpt.models.gpt2_config import GPTConfig
from gpt.cli import finetune as cli
from gpt.finetune import instruct
from gpt.models.gpt2 import GPT
from gpt.generation.printable import printable


def _base(folder):
    """A random "pretrained" checkpoint with a byte-level tokenizer."""
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=256, emb_dim=32, n_layers=2, n_heads=2, tie_weights=True))
    ckpt.save(str(folder), model, None, {"step": 5, "config": model.cfg.to_dict()})
    tok = bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256})
    tok.save(folder / ckpt.TOKENIZER)
    return model, tok


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """(base folder, instruction-tuned folder): tuned for a few seconds to answer "Is it a word?" with yes."""
    root = tmp_path_factory.mktemp("chat")
    _base(root / "base")
    words = ["set", "item", "class", "value", "one", "all", "use", "up"]
    entries = [{"instruction": "Is it a word?", "input": w * (i % 3 + 1), "output": "yes", "kind": "word"}
               for i, w in enumerate(words * 6)]
    (root / "d.json").write_text(json.dumps(entries))
    assert cli.main(["finetune", "instruct", "--data", str(root / "d.json"), "--init", str(root / "base"),
                     "--out", str(root / "sft"), "--epochs", "4", "--lr", "1e-2", "--batch-size", "8",
                     "--mask-prompt", "--max-new-tokens", "4"]) == 0
    return root / "base", root / "sft"


def _chat(capsys, *args, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    rc = gpt_main(["chat", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_chat_answers_a_held_out_instruction_once(tuned, capsys):
    _, sft = tuned
    rc, out, err = _chat(capsys, "--checkpoint", sft, "Is it a word?", "--input", "zebra")   # an input never seen
    assert rc == 0 and out == "yes\n", (out, err)


def test_chat_reads_instructions_until_exit_or_end_of_input(tuned, capsys, monkeypatch):
    _, sft = tuned
    rc, out, _ = _chat(capsys, "--checkpoint", sft, stdin="Is it a word?\nzebra\n\nIs it a word?\n\nexit\nnot read\n",
                       monkeypatch=monkeypatch)
    assert rc == 0 and out == "yes\nyes\n"                    # an empty instruction line is skipped
    rc, out, _ = _chat(capsys, "--checkpoint", sft, stdin="Is it a word?\nzebra\n", monkeypatch=monkeypatch)
    assert rc == 0 and out == "yes\n"                         # Ctrl-D (end of input) quits too


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_an_interactive_chat_first_says_what_the_model_knows_and_shows_instructions_that_work(tuned, capsys,
                                                                                            monkeypatch):
    _, sft = tuned
    monkeypatch.setattr("sys.stdin", _Terminal("exit\n"))
    capsys.readouterr()
    assert gpt_main(["chat", "--checkpoint", str(sft)]) == 0
    out = capsys.readouterr().out
    assert "knows only the kinds of instruction it was tuned on" in out
    right = [json.loads(line) for line in (sft / "responses.jsonl").read_text().splitlines()]
    right = [r for r in right if r["correct"]]
    assert right and f"  {right[0]['instruction']}  [input: {right[0]['input']}]  ->  {right[0]['output']}" in out


def test_chat_uses_the_template_fine_tuning_evaluates_with(tmp_path):
    """The answer of chat is the one fine-tuning's own evaluation (instruct.respond) gives for the same
    entry: the prompt is the same Alpaca text, token for token (a random model makes any difference show)."""
    model, tok = _base(tmp_path / "base")
    for entry in ({"instruction": "Add the numbers.", "input": "37+5"}, {"instruction": "Say hello.", "input": ""}):
        stream = io.StringIO()
        said = answer(model, tok, entry["instruction"], entry["input"], stream, max_new_tokens=12, temperature=0.0)
        assert said == instruct.respond(model, tok, entry, tok.eot_id, max_new_tokens=12)
        assert stream.getvalue() == printable(said) + "\n"        # streamed as it came, control characters escaped


def test_chat_and_sample_say_what_to_do_with_another_kind_of_checkpoint(tuned, tmp_path, capsys):
    base, _ = tuned
    rc, _, err = _chat(capsys, "--checkpoint", base, "Is it a word?")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "not instruction-tuned" in err and "python -m gpt finetune instruct" in err and "python -m gpt sample" in err
    data = tmp_path / "d.tsv"
    data.write_text("".join(f"{'doc' if i % 2 else 'comment'}\ttext number {i}\n" for i in range(40)))
    assert cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", str(tmp_path / "cls"),
                     "--epochs", "1", "--max-length", "8"]) == 0
    for command in (["chat", "--checkpoint", str(tmp_path / "cls"), "hello"],
                    ["sample", "--checkpoint", str(tmp_path / "cls"), "--prompt", "hello"]):
        capsys.readouterr()
        assert gpt_main(command) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "is a classifier" in err and "python -m gpt classify" in err, err


def test_sample_prints_control_characters_escaped(tuned, capsys):
    """What sample prints (prompt and generated text) holds no raw control character: a BEL in the prompt
    comes out as the four characters \\x07."""
    base, _ = tuned
    capsys.readouterr()
    assert gpt_main(["sample", "--checkpoint", str(base), "--prompt", "ring\x07the bell", "--max-new-tokens", "20",
                     "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ring\\x07the bell")
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) < 0xa0 for c in out), repr(out)


def _responses(folder, rows, by_kind=None, chance=None):
    folder.mkdir()
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if by_kind is not None:
        (folder / "metrics.json").write_text(json.dumps({"exact_match_by_kind": by_kind,
                                                         "chance_exact_match_by_kind": chance}))


def _row(kind, instruction, correct=True):
    return {"instruction": instruction, "input": "a,b", "output": "x", "kind": kind, "response": "x",
            "correct": correct}


def test_the_greeting_shows_one_answer_per_kind_learned_above_chance_first(tmp_path):
    from gpt.generation.chat import answered_right
    rows = [_row("yesno", "Is a in it?"), _row("yesno", "Is b in it?"), _row("yesno", "Is c in it?"),
            _row("field", "Give field 1."), _row("reverse", "Reverse the list.", correct=False),
            _row("reverse", "Reverse the list.")]
    _responses(tmp_path / "sft", rows, by_kind={"yesno": 0.52, "field": 0.41, "reverse": 0.60},
               chance={"yesno": 0.52, "field": 0.08, "reverse": 0.0})
    shown = [r["instruction"] for r in answered_right(str(tmp_path / "sft"))]
    assert shown == ["Reverse the list.", "Give field 1."]         # yes/no sits at chance: not shown
    _responses(tmp_path / "plain", rows)                             # no metrics.json: one per kind, in order
    shown = [r["instruction"] for r in answered_right(str(tmp_path / "plain"))]
    assert shown == ["Is a in it?", "Give field 1.", "Reverse the list."]


def test_exit_at_the_input_prompt_quits_too(tuned, capsys, monkeypatch):
    _, sft = tuned
    rc, out, _ = _chat(capsys, "--checkpoint", sft, stdin="Is it a word?\nexit\nIs it a word?\n\n",
                       monkeypatch=monkeypatch)
    assert rc == 0 and out == ""


def test_the_greeting_reads_a_damaged_kind_as_no_kind(tmp_path):
    from gpt.generation.chat import answered_right
    rows = [dict(_row("reverse", "Reverse the list."), kind=[1]), _row("field", "Give field 1.")]
    _responses(tmp_path / "sft", rows, by_kind={"field": 0.41}, chance={"field": 0.08})
    assert [r["instruction"] for r in answered_right(str(tmp_path / "sft"))] == ["Give field 1."]
