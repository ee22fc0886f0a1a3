"""The tokenizer a checkpoint carries: a Hugging Face folder's tokenizer files, or the
byte-level BPE vocabulary in a GGUF file's metadata; with the chat template of an instruct
model (`tokenizer.chat_template`)."""

import json
from pathlib import Path

from zoo.checkpoints.gguf import gguf_vocabulary, metadata, read
from zoo.preprocessing.byte_pair import BytePairTokenizer
from zoo.preprocessing.marian import MarianTokenizer
from zoo.preprocessing.sentencepiece import SentencePieceTokenizer
from zoo.preprocessing.wordpiece import WordPieceTokenizer


def tokenizer_from_folder(path):
    """The tokenizer of a Hugging Face folder, or None when it carries no tokenizer files.

    `vocab.txt` -> WordPiece (lowercased unless `tokenizer_config.json` says
    `do_lower_case: false`), `spiece.model` -> SentencePiece, `source.spm` + `target.spm` +
    `vocab.json` -> Marian's (SentencePiece pieces numbered by vocab.json), `vocab.json` +
    `merges.txt` -> GPT-2 byte-level BPE, its start, end and padding tokens
    `tokenizer_config.json`'s `bos_token`, `eos_token` and `pad_token`, its special tokens the
    `added_tokens_decoder` of the vocabulary, else the named ones (BART's `<s>`, `<pad>`,
    `</s>`, `<mask>`), which text may write whole. The chat template is
    `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template` (a string, or a list
    of named templates: the one named "default").
    """
    folder = Path(path)
    settings = folder / "tokenizer_config.json"
    settings = json.loads(settings.read_text(encoding="utf-8")) if settings.exists() else {}
    chat_template = folder_chat_template(folder, settings)
    if (folder / "vocab.txt").exists():
        lowercase = settings.get("do_lower_case", True)
        return WordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase,
                                  chat_template=chat_template)
    if (folder / "spiece.model").exists():
        return SentencePieceTokenizer(str(folder / "spiece.model"), chat_template=chat_template)
    if (folder / "source.spm").exists() and (folder / "vocab.json").exists():
        return MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"),
                               str(folder / "vocab.json"))
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        vocabulary = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        added = [token.get("content") for token in
                 settings.get("added_tokens_decoder", {}).values()]
        named = {key: _token_text(settings.get(f"{key}_token")) for key in NAMED_TOKENS}
        if not added:  # a tokenizer_config.json without them: its named tokens (BART's)
            added = [token for key, token in named.items() if key != "unk"]
        ids = {f"{name}_id": vocabulary.get(named[key])
               for name, key in (("start", "bos"), ("end", "eos"), ("pad", "pad"))}
        unknown = named["unk"] if named["unk"] in vocabulary else None
        return BytePairTokenizer(vocabulary, str(folder / "merges.txt"),
                                 special_tokens=[t for t in added if t in vocabulary],
                                 unknown_token=unknown, chat_template=chat_template, **ids)
    return None


# The special tokens a `tokenizer_config.json` names (`"bos_token": "<s>"`, ...).
NAMED_TOKENS = ("bos", "eos", "pad", "unk", "mask", "cls", "sep")


def _token_text(token):
    """A `tokenizer_config.json` token: a string, or a dict with its `content`."""
    return token.get("content") if isinstance(token, dict) else token


def folder_chat_template(folder, settings):
    """The chat template of a Hugging Face folder (see `tokenizer_from_folder`), or None."""
    jinja = Path(folder) / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    template = settings.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template


# llama.cpp's names of the byte-level pre-tokenizers (`tokenizer.ggml.pre`) that are GPT-2's
# regex, with each digit split off first or not.
GGUF_PRE_TOKENIZERS = {"default": False, "gpt-2": False, "smollm": True}
# `tokenizer.ggml.token_type`s that text may write whole: control (`<|im_start|>`) and
# user-defined tokens, as llama.cpp's tokenizer with `parse_special`.
GGUF_SPECIAL_TYPES = (3, 4)


def tokenizer_from_gguf(path):
    """The byte-level BPE tokenizer a GGUF file carries, and whether to add its start token.

    Needs `tokenizer.ggml.model == "gpt2"` and a pre-tokenizer of `GGUF_PRE_TOKENIZERS`;
    `start_id` / `end_id` / `pad_id` are the file's `bos` / `eos` / `padding` token ids, its
    special tokens the control and user-defined ones (`tokenizer.ggml.token_type` 3 and 4),
    its chat template `tokenizer.chat_template`.
    """
    reader = read(path)
    kind = metadata(reader, "tokenizer.ggml.model", path, "none")
    pre = metadata(reader, "tokenizer.ggml.pre", path, "default")
    if kind != "gpt2" or pre not in GGUF_PRE_TOKENIZERS:
        raise ValueError(
            f"{path} has a {kind!r} tokenizer with the {pre!r} pre-tokenizer; the zoo reads "
            f"byte-level BPE ('gpt2') with {sorted(GGUF_PRE_TOKENIZERS)}. Pass token ids to "
            "the model instead of text."
        )
    tokens, merges = gguf_vocabulary(path)
    unknown = reader.get_field("tokenizer.ggml.unknown_token_id")
    types = reader.get_field("tokenizer.ggml.token_type")
    types = [] if types is None else types.contents()
    template = reader.get_field("tokenizer.chat_template")
    ids = {}
    for name, key in (("start_id", "bos_token_id"), ("end_id", "eos_token_id"),
                      ("pad_id", "padding_token_id")):
        field = reader.get_field(f"tokenizer.ggml.{key}")
        if field is not None:
            ids[name] = int(field.contents())
    tokenizer = BytePairTokenizer(
        {t: i for i, t in enumerate(tokens)}, merges, split_digits=GGUF_PRE_TOKENIZERS[pre],
        unknown_token=None if unknown is None else tokens[int(unknown.contents())],
        special_tokens=[tokens[i] for i, kind in enumerate(types) if kind in GGUF_SPECIAL_TYPES],
        chat_template=None if template is None else template.contents(), **ids,
    )
    add_start = bool(metadata(reader, "tokenizer.ggml.add_bos_token", path, False))
    return tokenizer, add_start
