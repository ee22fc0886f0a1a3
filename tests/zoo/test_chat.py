"""Chat templates (`zoo/preprocessing/chat_template.py`): rendering against transformers'
`apply_chat_template` (tests/fixtures/chat_templates.json), the sandbox, special tokens in
text, the template read from checkpoints and kept by `.keras` files, `generate(messages)`,
`kt generate --chat`, and SmolLM2-135M-Instruct answering a question."""

import datetime
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from tests.helpers import smollm2_path
from zoo.preprocessing.chat_template import as_conversations, compile_template, render_chat

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates.json")
                     .read_text(encoding="utf-8"))
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QUESTION = [{"role": "user", "content": "Hi"}]
needs_tf = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                              reason="tokenizers are TF ops")


# --- rendering: pure Python, any backend ----------------------------------------------------


def test_rendering_equals_transformers_on_every_row_of_the_fixture():
    checked = 0
    for case in FIXTURE["cases"]:
        spec = FIXTURE["templates"][case["template"]]
        messages = FIXTURE["conversations"][case["conversation"]]
        options = dict(add_generation_prompt=case["add_generation_prompt"],
                       bos_token=spec["bos_token"], eos_token=spec["eos_token"])
        if "error" in case:
            with pytest.raises(ValueError) as error:
                render_chat(spec["template"], messages, **options)
            assert str(error.value) == ("The chat template refuses this conversation: "
                                        f"{case['error']}")
        else:
            assert render_chat(spec["template"], messages, **options) == case["rendered"], case
        checked += 1
    assert checked == len(FIXTURE["cases"]) == 96
    assert sum("error" in case for case in FIXTURE["cases"]) == 8


def test_a_template_that_raises_is_a_one_line_error():
    gemma = FIXTURE["templates"]["gemma"]["template"]
    with pytest.raises(ValueError) as error:
        render_chat(gemma, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert str(error.value) == ("The chat template refuses this conversation: Conversation "
                                "roles must alternate user/assistant/user/assistant/...")
    with pytest.raises(ValueError) as error:  # any other failure of the template, named
        render_chat("{{ messages[0]['content'] + 1 }}", QUESTION)
    assert str(error.value) == ("The chat template failed on this conversation: TypeError: "
                                "can only concatenate str (not \"int\") to str")


@pytest.mark.parametrize("template,forbidden", [
    ("{{ messages.__class__.__mro__ }}", "'__class__' of 'list'"),
    ("{{ messages.append(1) }}", "'append' of 'list'"),
    ("{{ messages[0].update(role='system') }}", "'update' of 'dict'"),
    ("{{ cycler.__init__.__globals__ }}", "'__init__' of 'type'"),
    ("{% set ns = namespace(_secret=1) %}", "'_secret' starts with _"),
    ("{{ dict.__call__.__globals__ }}", "'__call__'"),
    ("{{ raise_exception.__globals__.os }}", "'__globals__'"),
])
def test_the_sandbox_refuses_attributes_and_changes(template, forbidden):
    with pytest.raises(ValueError, match="sandbox forbids") as error:
        render_chat(template, QUESTION)
    assert forbidden in str(error.value) and "\n" not in str(error.value)


def test_a_private_attribute_renders_as_nothing():
    assert render_chat("[{{ messages.__class__ }}]", QUESTION) == "[]"


def test_the_environment_has_transformers_helpers():
    year = str(datetime.datetime.now().year)
    assert render_chat("{{ strftime_now('%Y') }}", QUESTION) == year
    # tojson keeps non-ASCII text and takes json.dumps' options; None-valued keys are dropped.
    messages = [{"role": "user", "content": "é", "name": None, "n": np.int64(3)}]
    assert render_chat("{{ messages | tojson(indent=None, sort_keys=true) }}", messages) == \
        '[{"content": "é", "n": 3, "role": "user"}]'
    assert render_chat("{% generation %}{{ tools }}{% endgeneration %}", QUESTION) == "None"


def test_a_template_that_is_not_jinja_fails_when_set():
    with pytest.raises(ValueError, match=r"not valid Jinja: .*'endfor'.* \(line 2\)"):
        compile_template("{% for m in messages %}\n{{ m }}")
    with pytest.raises(ValueError, match="a Jinja string, got dict"):
        compile_template({"default": CHATML})


def test_conversations_are_lists_of_message_dicts():
    assert as_conversations(QUESTION) == ([QUESTION], True)
    assert as_conversations([QUESTION, QUESTION]) == ([QUESTION, QUESTION], False)
    assert as_conversations(["text", "more"]) is None and as_conversations([[5, 9]]) is None
    with pytest.raises(ValueError, match="Message 0 of conversation 1 is not a dict with a 'role'"):
        as_conversations([QUESTION, [{"content": "no role"}]])
    with pytest.raises(ValueError, match="Conversation 1 is empty"):
        as_conversations([QUESTION, []])


# --- tokenizers, checkpoints, generation: TensorFlow -----------------------------------------


def byte_tokenizer(chat_template=CHATML, **options):
    """Byte-level BPE over the 256 byte symbols and SPECIALS (ids 256-258), no merges."""
    from zoo.preprocessing import BytePairTokenizer, bytes_to_unicode

    tokens = [*bytes_to_unicode().values(), *SPECIALS]
    options.setdefault("special_tokens", SPECIALS)
    return BytePairTokenizer({t: i for i, t in enumerate(tokens)}, [],
                             chat_template=chat_template, **options)


def chat_model(tokenizer=None):
    from tests.zoo.test_generation import lively
    from zoo.preprocessing import preprocessor_for

    tokenizer = tokenizer or byte_tokenizer()
    model = lively(zoo.build("gpt", size="tiny", task="causal_lm", dropout=0.0,
                             vocabulary_size=tokenizer.vocabulary_size()))
    model.preprocessor = preprocessor_for(model, tokenizer, 64)
    return model


@needs_tf
def test_special_tokens_in_text_are_their_ids():
    tokenizer = byte_tokenizer()
    text = "<|im_start|>user\né<|im_end|><|im_end|>"
    # Without merges each byte is its own token, whose id is the byte's value.
    assert tokenizer(text).numpy().tolist() == [257, *b"user\n\xc3\xa9", 258, 258]
    assert tokenizer(["<|im_end|>", "", "<|im_end"]).to_list() == [[258], [], [*b"<|im_end"]]
    assert tokenizer.detokenize(tokenizer(text)).numpy().decode() == text
    rebuilt = type(tokenizer).from_config(tokenizer.get_config())
    assert rebuilt.special_tokens == tuple(SPECIALS) and rebuilt.chat_template == CHATML
    with pytest.raises(ValueError, match=r"special tokens \['<\|eot_id\|>'\] are not in the"):
        byte_tokenizer(special_tokens=["<|eot_id|>"])


@needs_tf
def test_the_end_of_turn_is_what_the_template_writes_after_the_assistant():
    from zoo.preprocessing.chat_template import end_of_turn

    assert end_of_turn(byte_tokenizer()) == "<|im_end|>"
    templates = FIXTURE["templates"]
    # Llama 3's <|eot_id|> is no token of this vocabulary; features writes `{{ eos_token }}`.
    for name, expected in [("smollm2", "<|im_end|>"), ("llama3", None),
                           ("features", "<|endoftext|>")]:
        assert end_of_turn(byte_tokenizer(templates[name]["template"])) == expected
    assert end_of_turn(byte_tokenizer(templates["features"]["template"], end_id=258)) == \
        "<|im_end|>"
    assert end_of_turn(byte_tokenizer("{{ messages[0]['content'] }}")) is None


@needs_tf
def test_a_hugging_face_folder_carries_its_template_and_special_tokens(tmp_path):
    from zoo.preprocessing import bytes_to_unicode, tokenizer_from_folder

    tokens = [*bytes_to_unicode().values(), *SPECIALS]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    settings = {"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
                "added_tokens_decoder": {str(256 + i): {"content": t, "special": True}
                                         for i, t in enumerate(SPECIALS)},
                "chat_template": [{"name": "tool_use", "template": "tools"},
                                  {"name": "default", "template": CHATML}]}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    tokenizer = tokenizer_from_folder(tmp_path)
    assert tokenizer.chat_template == CHATML and tokenizer.special_tokens == tuple(SPECIALS)
    assert (tokenizer.start_id, tokenizer.end_id) == (257, 258)
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert tokenizer_from_folder(tmp_path).chat_template == "{{ messages[0]['content'] }}"


@needs_tf
def test_a_gguf_file_carries_its_template_and_control_tokens(tmp_path):
    gguf = pytest.importorskip("gguf")
    from zoo.preprocessing import bytes_to_unicode, tokenizer_from_gguf

    writer = gguf.GGUFWriter(str(tmp_path / "chat.gguf"), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([*bytes_to_unicode().values(), *SPECIALS])
    writer.add_token_types([1] * 256 + [3, 3, 3])
    writer.add_bos_token_id(257)
    writer.add_eos_token_id(258)
    writer.add_chat_template(CHATML)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tokenizer, add_start = tokenizer_from_gguf(tmp_path / "chat.gguf")
    assert tokenizer.chat_template == CHATML and tokenizer.special_tokens == tuple(SPECIALS)
    assert (tokenizer.start_id, tokenizer.end_id, add_start) == (257, 258, False)


@needs_tf
@pytest.mark.slow
def test_generate_renders_the_messages_and_answers_as_text():
    from zoo import generation

    model = chat_model()
    tokenizer = model.preprocessor.tokenizer
    conversations = [QUESTION, [{"role": "system", "content": "Be brief."}, *QUESTION]]
    request = generation.causal_request(model, conversations)
    prompts = [tokenizer(render_chat(CHATML, c, add_generation_prompt=True)).numpy().tolist()
               for c in conversations]
    # The template's own markers, and no start token added before them.
    assert request.rows == prompts and request.chat and prompts[0][:2] == [257, *b"u"]
    ids = model.generate(prompts, 6, stop_token_ids=None)
    expected = [tokenizer.detokenize([row]).numpy()[0].decode() for row in ids]
    assert model.generate(conversations, 6, stop_token_ids=None) == expected
    assert model.generate(QUESTION, 6, stop_token_ids=None) == expected[0]
    assert generation.default_stop_token_ids(model, chat=True) == (256, 258)
    assert generation.default_stop_token_ids(model) == (256,)


@needs_tf
@pytest.mark.slow
def test_generation_stops_at_the_end_of_turn():
    model = chat_model()
    # A final norm that always gives `v`, and <|im_end|>'s row along it: always the argmax.
    v = np.random.default_rng(0).normal(size=32).astype("float32")
    model.backbone.final_norm.gamma.assign(np.zeros(32, "float32"))
    model.backbone.final_norm.beta.assign(v)
    table = model.backbone.token_embedding.token_embedding.embeddings
    rows = keras.ops.convert_to_numpy(table)
    rows[258] = 10 * v
    table.assign(rows)
    prompt = model.preprocessor.tokenizer(render_chat(CHATML, QUESTION, True)).numpy().tolist()
    assert model.generate([prompt], 4) == [[258, 258, 258, 258]]  # not a stop for text prompts
    assert model.generate(QUESTION, 4) == ""
    assert model.generate(QUESTION, 4, stop_token_ids=None) == "<|im_end|>" * 4


@needs_tf
def test_a_model_without_a_template_says_how_to_set_one():
    model = chat_model(byte_tokenizer(chat_template=None))
    with pytest.raises(ValueError, match=r"has no chat template.*model\.preprocessor\."
                                         r"chat_template = "):
        model.generate(QUESTION, 2)
    model.preprocessor.chat_template = CHATML
    assert model.preprocessor.tokenizer.chat_template == CHATML
    with pytest.raises(ValueError, match="not valid Jinja"):
        model.preprocessor.chat_template = "{% if %}"


@needs_tf
@pytest.mark.slow
def test_a_keras_file_keeps_the_template_and_kt_generate_chats(tmp_path, capfd):
    from training import cli

    model = chat_model(byte_tokenizer(start_id=257, end_id=258))
    messages = [{"role": "system", "content": "Be brief."}, *QUESTION]
    expected = model.generate(messages, 5)
    model.save(tmp_path / "chat.keras")
    loaded = keras.saving.load_model(tmp_path / "chat.keras")
    tokenizer = loaded.preprocessor.tokenizer
    assert loaded.preprocessor.chat_template == CHATML
    assert (tokenizer.special_tokens, tokenizer.start_id, tokenizer.end_id) == \
        (tuple(SPECIALS), 257, 258)
    assert loaded.generate(messages, 5) == expected

    path = str(tmp_path / "chat.keras")
    assert cli.main(["generate", path, "--chat", "Hi", "--system", "Be brief.",
                     "--max-new-tokens", "5"]) == 0
    assert capfd.readouterr().out == expected + "\n"
    assert cli.main(["generate", path, "--prompt", "Hi", "--system", "Be brief."]) == 2
    assert "--system goes with --chat" in capfd.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one of them, not both
        cli.main(["generate", path, "--prompt", "Hi", "--chat", "Hi"])
    assert "not allowed with argument" in capfd.readouterr().err


@needs_tf
@pytest.mark.pretrained
@pytest.mark.slow
def test_smollm2_answers_a_chat_message_and_stops_at_im_end():
    model = zoo.from_pretrained(smollm2_path())
    tokenizer = model.preprocessor.tokenizer
    assert model.preprocessor.chat_template.startswith("{% for message in messages %}")
    assert len(tokenizer.special_tokens) == 17 and tokenizer.end_id == 2  # <|im_end|>
    question = [{"role": "user", "content": "What is the capital of France?"}]
    # The same 32 new tokens in both calls: one compiled loop serves them.
    answer = model.generate(question, max_new_tokens=32)
    assert answer == "The capital of France is Paris."
    from zoo import generation

    prompt = generation.causal_request(model, question).rows
    assert prompt[0][:3] == [1, 9690, 198]  # <|im_start|> system \n: no second start token
    assert model.generate(prompt, max_new_tokens=32)[0][-1] == 2  # stopped at <|im_end|>
