"""Generation: greedy, sampling controls, eos, seeds, batches, and the KV cache agreeing with no cache."""
import io

import numpy as np
import pytest

import tinytensor as tt
from gpt import generate, sample_next
from gpt.generation.generate import TextStreamer

from gpt_helpers import small_model


def _model(**over):
    model = small_model(seed=5, **over)
    for name, p in model.named_parameters():       # peaked logits, so sampling has something to follow
        if name.endswith("weight") and p.ndim == 2:
            p.data = (p.data * 10).astype(np.float32)
    return model


def test_greedy_is_the_argmax_of_a_full_forward_each_step():
    model = _model()
    prompt = np.array([[3, 14, 15]])
    out = generate(model, prompt, max_new_tokens=6, temperature=0.0)
    assert out.shape == (1, 9) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, :3], prompt)
    seq = prompt
    for _ in range(6):
        nxt = model(seq).numpy()[:, -1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(out, seq)


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(temperature=1.0, seed=3),
                                dict(temperature=0.7, top_k=5, seed=4), dict(temperature=1.3, top_p=0.9, seed=5)])
def test_cache_and_no_cache_agree_also_past_the_context_length(kw):
    model = _model().to(np.float64)          # float64: near-ties cannot flip a choice between the two paths
    prompt = np.random.default_rng(0).integers(0, 97, (2, 4))
    # 4 + 20 tokens run past the context length of 16: the window slides
    with_cache = generate(model, prompt, max_new_tokens=20, use_cache=True, **kw)
    without = generate(model, prompt, max_new_tokens=20, use_cache=False, **kw)
    np.testing.assert_array_equal(with_cache, without)


def test_cache_and_no_cache_agree_in_float32_greedy():
    model = _model()
    prompt = np.random.default_rng(1).integers(0, 97, (3, 2))
    np.testing.assert_array_equal(generate(model, prompt, 12, use_cache=True),
                                  generate(model, prompt, 12, use_cache=False))


def test_seed_reproduces_and_batch_rows_match_single_prompts():
    model = _model().to(np.float64)
    prompts = np.array([[1, 2, 3], [4, 5, 6]])
    a = generate(model, prompts, 8, temperature=1.0, seed=11)
    np.testing.assert_array_equal(a, generate(model, prompts, 8, temperature=1.0, seed=11))
    greedy = generate(model, prompts, 8)
    for i in range(2):
        np.testing.assert_array_equal(greedy[i], generate(model, prompts[i:i + 1], 8)[0])
    # a seed does not touch the library's generator
    tt.manual_seed(0)
    before = tt.random.get_state()
    generate(model, prompts, 3, temperature=1.0, seed=1)
    assert tt.random.get_state() == before
    # seed=None draws from the library's generator, which tt.manual_seed controls
    tt.manual_seed(7)
    x = generate(model, prompts, 8, temperature=1.0)
    tt.manual_seed(7)
    np.testing.assert_array_equal(x, generate(model, prompts, 8, temperature=1.0))


def test_top_k_1_and_tiny_top_p_are_greedy():
    model = _model()
    prompt = np.array([[7, 8]])
    greedy = generate(model, prompt, 10)
    np.testing.assert_array_equal(generate(model, prompt, 10, temperature=1.0, top_k=1, seed=0), greedy)
    np.testing.assert_array_equal(generate(model, prompt, 10, temperature=1.0, top_p=1e-9, seed=0), greedy)


def test_sample_next_respects_top_k_and_top_p():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    k2 = {int(sample_next(logits, 1.0, top_k=2, rng=rng)[0]) for _ in range(300)}
    assert k2 == {0, 1}
    p = {int(sample_next(logits, 1.0, top_p=0.7, rng=rng)[0]) for _ in range(300)}
    assert p == {0, 1}                      # 0.5 < 0.7, so the second token is needed; then 0.8 >= 0.7
    draws = [int(sample_next(logits, 1.0, rng=rng)[0]) for _ in range(4000)]
    freq = np.bincount(draws, minlength=4) / 4000
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    assert sample_next(logits, 0.0)[0] == 0


def test_eos_stops_each_row_and_the_whole_batch():
    model = _model()
    prompt = np.array([[1, 2], [3, 4]])
    free = generate(model, prompt, 10)
    eos = int(free[0, 4])                   # the token row 0 produces third
    out = generate(model, prompt, 10, eos_id=eos)
    row0 = list(out[0, 2:])
    assert eos in row0 and all(t == eos for t in row0[row0.index(eos):])
    single = generate(model, prompt[:1], 10, eos_id=eos)
    assert single.shape[1] == 2 + row0.index(eos) + 1          # stopped right after eos


def test_on_token_streams_every_new_column_and_errors_are_clear():
    model = _model()
    seen = []
    out = generate(model, [[1, 2, 3]], 5, on_token=lambda col: seen.append(col.copy()))
    np.testing.assert_array_equal(np.stack(seen, axis=1), out[:, 3:])
    with pytest.raises(ValueError, match="different lengths"):
        generate(model, [[1, 2], [3]], 2)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [[1]], 2, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [[1]], 2, top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, [[1]], 2, top_k=0)
    assert generate(model, [1, 2], 0).shape == (1, 2)
    assert model.training is True           # generate restores the mode


def test_text_streamer_holds_back_half_characters():
    class Tok:                              # decode of a byte-level tokenizer: id = byte
        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")
    buf = io.StringIO()
    s = TextStreamer(Tok(), list(b"a"), buf)
    for b in "é!".encode("utf-8"):
        s(np.array([b]))
    s.finish()
    assert buf.getvalue() == "é!\n"


# ----- non-finite logits, linear streaming (issue 15, item 11 and low) -----
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_nan_or_inf_logits_are_refused_not_turned_into_token_0(bad, temperature):
    model = _model()
    model.final_norm.bias.data[3] = bad                  # one damaged weight: every logit becomes NaN
    with pytest.raises(ValueError, match=r"logits hold (NaN|\+inf) at step 1.*damaged"):
        generate(model, [[1, 2]], max_new_tokens=3, temperature=temperature, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        sample_next(np.array([[0.0, np.nan, 1.0]]), temperature)
    with pytest.raises(ValueError, match=r"\+inf"):
        sample_next(np.array([[0.0, np.inf, 1.0]]), temperature)
    with pytest.raises(ValueError, match="only -inf"):
        sample_next(np.array([[-np.inf, -np.inf]]), temperature)
    assert sample_next(np.array([[-np.inf, 2.0, 1.0]]), temperature, rng=np.random.default_rng(0)).tolist() in ([1], [2])


def test_sample_cli_with_a_nan_weight_is_one_line(tmp_path, capsys):
    from gpt.training import checkpoint as ckpt
    from gpt.__main__ import main
    model = small_model(vocab_size=300)
    ckpt.save(tmp_path, model, None, {"step": 1, "config": model.cfg.to_dict()})
    model.blocks[0].mlp.fc.weight.data[0, 0] = np.nan        # a file damaged after saving (saving refuses NaN)
    tt.save(model.state_dict(), str(tmp_path / ckpt.MODEL), metadata={"format": ckpt.FORMAT, "step": "1"})
    import bpe
    bpe.train("hello world, hello there " * 20, 260, special_tokens=("<|endoftext|>",)).save(tmp_path / "tokenizer.bpe")
    capsys.readouterr()
    rc = main(["sample", "--checkpoint", str(tmp_path), "--prompt", "hello", "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert rc != 0 and "\x00" not in out, out
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "NaN" in err and "step 1" in err


def test_text_streamer_does_constant_work_per_token_and_prints_what_decode_gives():
    import bpe
    with pytest.warns(UserWarning, match="no more pairs to merge"):          # a short text: expected
        tok = bpe.train("héllo wörld, ça va? " * 30, 280)
    ids = tok.encode("héllo wörld, ça va? " * 40)
    work = []

    class Counting:
        def __getattr__(self, name):
            return getattr(tok, name)

        def decode_bytes(self, some):
            some = list(some)
            work.append(len(some))
            return tok.decode_bytes(some)

        def decode(self, some):
            some = list(some)
            work.append(len(some))
            return tok.decode(some)
    buf = io.StringIO()
    s = TextStreamer(Counting(), ids[:3], buf)
    for i in ids[3:]:
        s(np.array([i]))
    s.finish()
    assert tok.decode(ids[:3]) + buf.getvalue() == tok.decode(ids) + "\n"
    assert sum(work) <= 2 * len(ids), f"decoded {sum(work)} ids for {len(ids)} tokens: quadratic"
