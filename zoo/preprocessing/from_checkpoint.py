"""The tokenizer a checkpoint carries: a Hugging Face folder's tokenizer files, or the
byte-level BPE vocabulary in a GGUF file's metadata."""

import json
from pathlib import Path

from zoo.checkpoints.gguf import gguf_vocabulary, metadata, read
from zoo.preprocessing.byte_pair import BytePairTokenizer
from zoo.preprocessing.sentencepiece import SentencePieceTokenizer
from zoo.preprocessing.wordpiece import WordPieceTokenizer


def tokenizer_from_folder(path):
    """The tokenizer of a Hugging Face folder, or None when it carries no tokenizer files.

    `vocab.txt` -> WordPiece (lowercased unless `tokenizer_config.json` says
    `do_lower_case: false`), `spiece.model` -> SentencePiece, `vocab.json` + `merges.txt` ->
    GPT-2 byte-level BPE.
    """
    folder = Path(path)
    if (folder / "vocab.txt").exists():
        settings = folder / "tokenizer_config.json"
        lowercase = True
        if settings.exists():
            lowercase = json.loads(settings.read_text()).get("do_lower_case", True)
        return WordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase)
    if (folder / "spiece.model").exists():
        return SentencePieceTokenizer(str(folder / "spiece.model"))
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        return BytePairTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    return None


# llama.cpp's names of the byte-level pre-tokenizers (`tokenizer.ggml.pre`) that are GPT-2's
# regex, with each digit split off first or not.
GGUF_PRE_TOKENIZERS = {"default": False, "gpt-2": False, "smollm": True}


def tokenizer_from_gguf(path):
    """The byte-level BPE tokenizer a GGUF file carries, and whether to add its start token.

    Needs `tokenizer.ggml.model == "gpt2"` and a pre-tokenizer of `GGUF_PRE_TOKENIZERS`;
    `start_id` / `end_id` / `pad_id` are the file's `bos` / `eos` / `padding` token ids (set
    on the tokenizer; a saved and reloaded one has `<|endoftext|>` for start and end again).
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
    tokenizer = BytePairTokenizer(
        {t: i for i, t in enumerate(tokens)}, merges, split_digits=GGUF_PRE_TOKENIZERS[pre],
        unknown_token=None if unknown is None else tokens[int(unknown.contents())],
    )
    for attribute, key in (("start_id", "bos_token_id"), ("end_id", "eos_token_id"),
                           ("pad_id", "padding_token_id")):
        field = reader.get_field(f"tokenizer.ggml.{key}")
        if field is not None:
            setattr(tokenizer, attribute, int(field.contents()))
    add_start = bool(metadata(reader, "tokenizer.ggml.add_bos_token", path, False))
    return tokenizer, add_start
