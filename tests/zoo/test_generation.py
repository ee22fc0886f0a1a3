"""Generation (`zoo/generation/`): the cached, compiled loop against an uncached argmax loop,
beam search against greedy, the reference checkpoints' own `generate`, samplers, stop tokens
and bad input."""

from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from tests.helpers import smollm2_path
from zoo import generation

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
PROMPTS = [[5, 9, 2, 7, 3], [11], [4, 8, 15]]  # mixed lengths in one batch
T5_SOURCES = [[5, 6, 7, 8, 1], [9, 1], [3, 4, 1]]


def lively(model, scale=0.3):
    """Weights (norms aside) drawn wide, so that an untrained model's argmax moves from token
    to token."""
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if "norm" not in weight.path:
            weight.assign(rng.normal(0, scale, weight.shape).astype("float32"))
    return model


def build(name, size):
    task = "seq2seq_lm" if name == "t5" else "causal_lm"
    return lively(zoo.build(name, size=size, task=task, vocabulary_size=97, dropout=0.0))


def uncached_causal(model, prompt, new_tokens):
    """The whole sequence through the model at every step, argmax of the last position."""
    ids = list(prompt)
    for _ in range(new_tokens):
        x = {"token_ids": np.array([ids], "int32"), "padding_mask": np.ones((1, len(ids)), "int32")}
        ids.append(int(np.argmax(keras.ops.convert_to_numpy(model(x))[0, -1])))
    return ids[len(prompt):]


def uncached_seq2seq(model, source, new_tokens, start_id=0):
    decoder = [start_id]
    for _ in range(new_tokens):
        x = {"encoder_token_ids": np.array([source], "int32"),
             "encoder_padding_mask": np.ones((1, len(source)), "int32"),
             "decoder_token_ids": np.array([decoder], "int32"),
             "decoder_padding_mask": np.ones((1, len(decoder)), "int32")}
        decoder.append(int(np.argmax(keras.ops.convert_to_numpy(model(x))[0, -1])))
    return decoder[1:]


@pytest.mark.parametrize("name,size", [("gpt", "tiny"), ("gpt", "tiny_llama"), ("t5", "tiny")])
@pytest.mark.slow
def test_cached_greedy_equals_an_uncached_argmax_loop_on_mixed_lengths(name, size):
    model = build(name, size)
    if name == "t5":
        expected = [uncached_seq2seq(model, s, 6) for s in T5_SOURCES]
        generated = model.generate(T5_SOURCES, max_new_tokens=6)
    else:
        expected = [uncached_causal(model, p, 6) for p in PROMPTS]
        generated = model.generate(PROMPTS, max_new_tokens=6)
    assert generated == expected
    assert len({t for row in expected for t in row}) > 3  # the check is not a constant


@pytest.mark.slow_once
@pytest.mark.parametrize("name,size", [("gpt", "tiny_llama"), ("t5", "tiny")])
def test_beam_search_with_one_beam_is_greedy(name, size):
    model = build(name, size)
    prompts = T5_SOURCES if name == "t5" else PROMPTS
    greedy = model.generate(prompts, max_new_tokens=5)
    assert model.generate(prompts, max_new_tokens=5, sampler="beam", num_beams=1) == greedy


@pytest.mark.slow
def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy():
    model = build("gpt", "tiny")

    def log_probability(prompt, new):
        ids = prompt + new
        x = {"token_ids": np.array([ids], "int32"), "padding_mask": np.ones((1, len(ids)), "int32")}
        logits = keras.ops.convert_to_numpy(model(x))[0].astype("float64")
        logits -= logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return sum(log_probs[len(prompt) - 1 + i, t] for i, t in enumerate(new))

    greedy = model.generate(PROMPTS, 4)
    beam = model.generate(PROMPTS, 4, sampler="beam", num_beams=4, length_penalty=0.0)
    scores = [(log_probability(p, b), log_probability(p, g))
              for p, b, g in zip(PROMPTS, beam, greedy, strict=True)]
    assert all(b >= g - 1e-4 for b, g in scores)
    assert any(b > g + 1e-3 for b, g in scores)  # it found better ones


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="checkpoints load under TF")
@pytest.mark.parametrize("name", ["gpt2", "llama", "llama_untied", "t5", "t5_v1_1"])
@pytest.mark.slow
def test_tiny_references_greedy_equals_their_generate(name):
    outputs = np.load(REFERENCE / name / "outputs.npz")
    model = zoo.from_pretrained(REFERENCE / name)
    expected = outputs["output_generated"]
    if name.startswith("t5"):  # the reference banned its end token 1 (min_new_tokens=6)
        generated = model.generate(
            {"encoder_token_ids": outputs["input_encoder_input_ids"],
             "encoder_padding_mask": outputs["input_encoder_attention_mask"]},
            max_new_tokens=6, stop_token_ids=[1], min_new_tokens=6)
        np.testing.assert_array_equal(generated["token_ids"], expected[:, 1:])
    else:
        prompt = outputs["input_prompt"]
        generated = model.generate(prompt.tolist(), max_new_tokens=6)
        assert generated == expected[:, prompt.shape[1]:].tolist()


@pytest.mark.slow_once
def test_sampling_is_reproducible_with_a_seed_and_reduces_to_greedy_at_the_limits():
    model = build("gpt", "tiny")
    greedy = model.generate(PROMPTS, 6)
    for sampler in ("temperature", "top_p"):
        first = model.generate(PROMPTS, 6, sampler=sampler, seed=3)
        assert model.generate(PROMPTS, 6, sampler=sampler, seed=3) == first
        assert model.generate(PROMPTS, 6, sampler=sampler, seed=4) != first
    assert model.generate(PROMPTS, 6, sampler="top_k", top_k=1, seed=5) == greedy
    assert model.generate(PROMPTS, 6, sampler="top_p", top_p=1e-6, seed=5) == greedy


def test_a_lone_prompt_samples_what_it_samples_first_in_a_batch():
    """A row's samples do not depend on the rows decoded beside it: alone it draws what it
    draws first in a batch of two with the same seed."""
    model = build("gpt", "tiny")
    x = {"token_ids": np.array([[5, 9, 2], [7, 3, 8]], "int32"),
         "padding_mask": np.ones((2, 3), "int32")}
    lone = {name: value[:1] for name, value in x.items()}
    for sampler in ("greedy", "temperature"):
        both = model.generate(x, 6, sampler=sampler, seed=3)
        alone = model.generate(lone, 6, sampler=sampler, seed=3)
        np.testing.assert_array_equal(alone["token_ids"], both["token_ids"][:1])
        assert alone["token_ids"].shape == (1, 6)


@pytest.mark.parametrize("sampler,options", [
    ("temperature", {"temperature": 2.0}),
    ("top_k", {"top_k": 3}),
    ("top_p", {"top_p": 0.6}),
])
@pytest.mark.slow
def test_samples_follow_the_filtered_softmax(sampler, options):
    """2,000 draws of the first new token against the distribution each sampler defines."""
    model = build("gpt", "tiny")
    prompt = [5, 9, 2]
    x = {"token_ids": np.array([prompt], "int32"), "padding_mask": np.ones((1, 3), "int32")}
    logits = keras.ops.convert_to_numpy(model(x))[0, -1].astype("float64")
    logits /= options.get("temperature", 1.0)
    order = np.argsort(-logits)
    keep = np.zeros_like(logits, bool)
    if sampler == "top_k":
        keep[order[:options["top_k"]]] = True
    elif sampler == "top_p":
        probabilities = np.exp(logits[order] - logits.max())
        probabilities /= probabilities.sum()
        before = np.cumsum(probabilities) - probabilities
        keep[order[before < options["top_p"]]] = True
    else:
        keep[:] = True
    expected = np.where(keep, np.exp(logits - logits.max()), 0.0)
    expected /= expected.sum()
    draws = model.generate([prompt] * 2000, 1, sampler=sampler, seed=0, **options)
    counts = np.bincount([row[0] for row in draws], minlength=len(logits)) / 2000
    assert counts[~keep].sum() == 0
    np.testing.assert_allclose(counts, expected, atol=0.04)


@pytest.mark.slow_once
def test_stop_tokens_end_rows_and_min_new_tokens_bans_them():
    model = build("gpt", "tiny")
    greedy = model.generate(PROMPTS, 6)
    stop = greedy[0][2]
    stopped = model.generate(PROMPTS, 6, stop_token_ids=[stop])
    for row, full in zip(stopped, greedy, strict=True):
        end = full.index(stop) + 1 if stop in full else len(full)
        assert row == full[:end]
    assert stopped[0] == greedy[0][:3]
    as_dict = model.generate({"token_ids": np.array([PROMPTS[0]]),
                              "padding_mask": np.ones((1, 5), "int32")}, 6,
                             stop_token_ids=[stop])
    assert as_dict["padding_mask"].tolist() == [[1, 1, 1, 0, 0, 0]]
    banned = model.generate(PROMPTS[:1], 6, stop_token_ids=[stop], min_new_tokens=6)[0]
    assert len(banned) == 6 and stop not in banned


@pytest.mark.slow_once
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts tf.function traces")
def test_calls_of_the_same_shapes_do_not_trace_again():
    model = build("gpt", "tiny")
    model.generate(PROMPTS, 4)
    model.generate([[3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9], [4]], 4)  # other lengths, same bucket
    model.generate([[7]], 4)  # another batch size: traced once more
    model.generate([[8]], 4)
    (function,) = generation._COMPILED[model].values()
    assert function.experimental_get_tracing_count() == 2


def test_bad_input_is_refused_with_a_clear_error():
    model = build("gpt", "tiny")  # a context of 128 positions
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
            model.generate(PROMPTS, bad)
    with pytest.raises(ValueError, match="does not fit the model's context of 128"):
        model.generate(PROMPTS, 128)
    with pytest.raises(ValueError, match=r"Unknown sampler 'nucleus'.*'top_p'"):
        model.generate(PROMPTS, 2, sampler="nucleus")
    with pytest.raises(ValueError, match="Prompt 1 is empty"):
        model.generate([[5], []], 2)
    with pytest.raises(ValueError, match="No prompts"):
        model.generate([], 2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate([[5, 97]], 2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.generate(PROMPTS, 2, sampler="temperature", temperature=0)
    with pytest.raises(ValueError, match="need a preprocessor"):
        model.generate("Once upon a time", 2)
    with pytest.raises(ValueError, match="right padding"):
        model.generate({"token_ids": np.array([[0, 5, 6]]),
                        "padding_mask": np.array([[0, 1, 1]])}, 2)
    for name, bad in [("min_length", -1), ("no_repeat_ngram_size", 1.5),
                      ("min_new_tokens", True)]:
        with pytest.raises(ValueError, match=rf"^{name} must be an int >= 0 \(0: off\), "):
            model.generate(PROMPTS, 2, **{name: bad})
    with pytest.raises(ValueError, match=r"early_stopping must be False, True or 'never'"):
        model.generate(PROMPTS, 2, sampler="beam", early_stopping="always")


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_cut_from_the_left_with_a_warning():
    model = build("gpt", "tiny")
    long = list(np.random.default_rng(1).integers(0, 97, 130))
    with pytest.warns(UserWarning, match=r"Prompt 0 has 130 tokens.*room for 118.*first 12"):
        cut = model.generate([long], 10)
    assert cut == model.generate([long[12:]], 10)


def text_model():
    from zoo.preprocessing import WordPieceTokenizer, preprocessor_for

    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "."]
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    model = lively(zoo.build("gpt", size="tiny", task="causal_lm", vocabulary_size=14))
    model.preprocessor = preprocessor_for(model, tokenizer, 16)
    return model, tokenizer


@pytest.mark.slow_once
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tokenizers are TF ops")
def test_strings_in_strings_out_with_a_preprocessor():
    model, tokenizer = text_model()
    texts = model.generate(["the cat", "a dog ran"], 5, stop_token_ids=None)
    ids = model.generate([[2, 5, 6], [2, 10, 11, 12]], 5)  # [CLS] + the words' ids
    assert texts == [tokenizer.detokenize([row]).numpy()[0].decode() for row in ids]
    assert model.generate("the cat", 5, stop_token_ids=None) == texts[0]


@pytest.mark.slow
def test_stream_yields_the_tokens_of_generate():
    model = build("gpt", "tiny_llama")
    for sampler, options in [("greedy", {}), ("top_k", {"top_k": 4, "seed": 2})]:
        expected = model.generate([PROMPTS[0]], 6, sampler=sampler, **options)[0]
        assert list(generation.stream(model, PROMPTS[0], 6, sampler=sampler, **options)) == \
            expected


@pytest.mark.slow
def test_stream_of_another_prompt_length_with_the_same_total_is_its_own():
    """The compiled stream functions are shared by equal cache sizes: the prompt's length is
    an argument of them, not a constant (a 3-token prompt + 5 and a 4-token one + 4 once got
    the first prompt's positions)."""
    model = build("gpt", "tiny_llama")
    for prompt, new in [([5, 9, 2], 5), ([5, 9, 2, 4], 4), ([7], 7)]:
        assert list(generation.stream(model, prompt, new)) == model.generate([prompt], new)[0]


@pytest.mark.parametrize("name", ["gpt", "t5"])
def test_a_new_max_new_tokens_compiles_once_per_power_of_two(name):
    """16, then 32 new tokens' room: 5, 9 and 16 share one compiled loop, 17 and 30 another;
    each answer is the start of the longer ones (greedy)."""
    model = build(name, "tiny")
    prompts = {"encoder_token_ids": np.array([[5, 9, 2, 1]]),
               "encoder_padding_mask": np.array([[1, 1, 1, 1]])} if name == "t5" else [[5, 9, 2]]
    answers = {}
    for new in (5, 9, 16, 17, 30):
        out = model.generate(prompts, new, stop_token_ids=None)
        answers[new] = out["token_ids"][0].tolist() if name == "t5" else out[0]
        assert len(answers[new]) == new
    assert len(generation._COMPILED[model]) == 2
    for new in (5, 9, 16, 17):
        assert answers[new] == answers[30][:new]


@pytest.mark.slow_once
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tokenizers are TF ops")
def test_kt_generate_prints_the_continuation(tmp_path, capsys):
    from training import cli

    model, _ = text_model()
    expected = model.generate("the cat", 5)
    model.save(tmp_path / "model.keras")
    assert cli.main(["generate", str(tmp_path / "model.keras"), "--prompt", "the cat",
                     "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out == expected + "\n"
    bans = dict(min_length=6, no_repeat_ngram_size=1)
    assert model.generate("the cat", 5, **bans) != expected
    for sampler, more in [("greedy", {}), ("beam", {"early_stopping": "never"})]:
        expected = model.generate("the cat", 5, sampler=sampler, **bans, **more)
        flags = ["--early-stopping", "never"] if more else []  # streamed / printed whole
        assert cli.main(["generate", str(tmp_path / "model.keras"), "--prompt", "the cat",
                         "--max-new-tokens", "5", "--sampler", sampler, "--min-length", "6",
                         "--no-repeat-ngram-size", "1", *flags]) == 0
        assert capsys.readouterr().out == expected + "\n"
    assert cli.main(["generate", str(tmp_path / "model.keras"), "--prompt", "the cat",
                     "--sampler", "nucleus"]) == 2
    assert "Unknown sampler 'nucleus'" in capsys.readouterr().err


@pytest.mark.pretrained
@pytest.mark.slow_once
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="checkpoints load under TF")
def test_smollm2_continues_the_capital_of_france_with_paris():

    model = zoo.from_pretrained(smollm2_path())
    reference = np.load(REFERENCE / "smollm2.npz")
    assert model.preprocessor.tokenizer("The capital of France is").numpy().tolist() == \
        reference["prompt"][0].tolist()
    # 8 new tokens in both calls: one compiled loop (a 30-layer model compiles slowly) serves both.
    text = model.generate("The capital of France is", max_new_tokens=8)
    assert text.startswith(" Paris")
    ids = model.generate(reference["prompt"].tolist(), max_new_tokens=8)
    assert ids[0] == reference["generated"][0, reference["prompt"].shape[1]:].tolist()


def reference_cases(name):
    """The prompts of `generate.npz` (see tests/fixtures/make_reference.py) and its cases:
    `generate`'s options and HF's new tokens."""
    stored = np.load(REFERENCE / name / "generate.npz")
    if "encoder_token_ids" in stored:
        prompts = {"encoder_token_ids": stored["encoder_token_ids"],
                   "encoder_padding_mask": stored["encoder_padding_mask"]}
    else:
        prompts = [row[:n].tolist()
                   for row, n in zip(stored["prompt_ids"], stored["prompt_lengths"], strict=True)]
    cases = []
    for i in range(len([k for k in stored if k.startswith("case")])):
        beams, penalty, min_length, no_repeat = stored[f"case{i}"].tolist()
        early_stopping = {"False": False, "True": True}.get(
            str(stored[f"early_stopping{i}"]), "never")
        options = dict(min_length=int(min_length), no_repeat_ngram_size=int(no_repeat))
        if beams > 1:
            options.update(sampler="beam", num_beams=int(beams), length_penalty=penalty,
                           early_stopping=early_stopping)
        expected = [[t for t in row if t >= 0] for row in stored[f"tokens{i}"].tolist()]
        cases.append((options, expected))
    return prompts, int(stored["eos"]), cases


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="checkpoints load under TF")
@pytest.mark.parametrize("name", ["gpt2", "llama", "t5", "t5_v1_1", "bart", "marian"])
@pytest.mark.slow
def test_greedy_and_beam_search_equal_the_references_generate(name):
    """Padded batches, 8 new tokens, an end token the model produces (rows end early),
    against HF's `generate(num_beams, length_penalty, min_length, no_repeat_ngram_size,
    early_stopping)`."""
    model = zoo.from_pretrained(REFERENCE / name)
    prompts, eos, cases = reference_cases(name)
    for options, expected in cases:
        generated = model.generate(prompts, 8, stop_token_ids=[eos], **options)
        if isinstance(generated, dict):
            generated = [row[:int(m.sum())].tolist() for row, m in
                         zip(generated["token_ids"], generated["padding_mask"], strict=True)]
        assert generated == expected, options


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="checkpoints load under TF")
@pytest.mark.parametrize("name", ["bart", "marian"])
@pytest.mark.slow
def test_forced_first_and_last_tokens_equal_the_references_generate(name):
    """bart-large-cnn's forced `<s>` first and end token last (`forced_bos_token_id`,
    `forced_eos_token_id`), greedy and 4 beams, against HF's `generate`; the config's own
    values are what `"auto"` uses."""
    model = zoo.from_pretrained(REFERENCE / name)
    stored = np.load(REFERENCE / name / "forced.npz")
    sources = dict(np.load(REFERENCE / name / "generate.npz"))
    prompts = {k: sources[k] for k in ("encoder_token_ids", "encoder_padding_mask")}
    bos, eos = int(stored["forced_bos_token_id"]), int(stored["forced_eos_token_id"])
    for beams, options in [(1, {}), (4, dict(sampler="beam", num_beams=4))]:
        expected = [[t for t in row if t >= 0] for row in stored[f"tokens_beams{beams}"].tolist()]
        generated = model.generate(prompts, 8, stop_token_ids=[eos], forced_bos_token_id=bos,
                                   forced_eos_token_id=eos, **options)
        rows = [row[:int(m.sum())].tolist() for row, m in
                zip(generated["token_ids"], generated["padding_mask"], strict=True)]
        assert rows == expected, beams
        assert all(row[0] == bos for row in rows)
        if beams == 1:
            assert any(len(row) == 8 and row[-1] == eos for row in rows)  # forced at the end
    # "auto" (the default) reads the model's config.
    forcing = zoo.from_pretrained(REFERENCE / name, forced_bos_token_id=bos,
                                  forced_eos_token_id=eos)
    generated = forcing.generate(prompts, 8, stop_token_ids=[eos], sampler="beam", num_beams=4)
    assert [row[:int(m.sum())].tolist() for row, m in
            zip(generated["token_ids"], generated["padding_mask"], strict=True)] == rows


def repeats(sequence, n):
    """Whether an n-gram occurs twice in `sequence`."""
    grams = [tuple(sequence[i:i + n]) for i in range(len(sequence) - n + 1)]
    return len(set(grams)) < len(grams)


@pytest.mark.slow_once
def test_sampling_and_stream_keep_min_length_and_no_repeat_ngram_size():
    model = build("gpt", "tiny")
    free = model.generate(PROMPTS, 10, sampler="top_k", top_k=5, seed=1)
    assert all(repeats(p + row, 1) for p, row in zip(PROMPTS, free, strict=True))
    stop = max({t for row in free for t in row}, key=lambda t: sum(r.count(t) for r in free))
    options = dict(sampler="top_k", top_k=5, seed=1, stop_token_ids=[stop], min_length=9,
                   no_repeat_ngram_size=1)
    banned = model.generate(PROMPTS, 10, **options)
    for prompt, row in zip(PROMPTS, banned, strict=True):
        assert not repeats(prompt + row, 1)  # no token twice
        assert stop not in row[:9 - len(prompt)]  # none before the sequence has 9 tokens
    assert [len(row) for row in banned] != [10, 10, 10]  # and the stop token still ends rows
    alone = model.generate(PROMPTS[:1], 10, **options)[0]  # the noise of a batch of one
    assert list(generation.stream(model, PROMPTS[0], 10, **options)) == alone


@pytest.mark.slow
@pytest.mark.parametrize("options,expected", [
    ({}, [[60, 8, 94, 94, 80, 80, 39, 94], [58, 84, 8, 38, 58, 8, 8, 60],
          [94, 94, 39, 94, 63, 94, 70]]),
    ({"sampler": "beam", "num_beams": 3, "early_stopping": True},
     [[60, 6, 8, 94, 17, 60, 94, 43], [58, 8, 94, 94, 43, 58, 2, 60],
      [94, 94, 39, 94, 63, 94, 70]]),
])
def test_min_length_and_no_repeat_ngram_size_give_the_same_tokens_on_every_backend(
        options, expected):
    """Without the bans, stop token 70 ends rows 0 and 1 at once and row 2 repeats (94, 94)."""
    model = build("gpt", "tiny")
    generated = model.generate(PROMPTS, 8, stop_token_ids=[70], min_length=9,
                               no_repeat_ngram_size=2, **options)
    assert generated == expected
    for prompt, row in zip(PROMPTS, generated, strict=True):
        assert not repeats(prompt + row, 2) and 70 not in row[:9 - len(prompt)]
