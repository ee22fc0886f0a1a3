"""GGUF files (llama.cpp's format) of Llama-architecture models, into the zoo's `gpt` family.

`zoo.from_pretrained("model.gguf")` calls `from_gguf`. It reads the hyperparameters from the
file's metadata (`llama.block_count`, `llama.embedding_length`, ...), builds a Llama-style
`CausalLM`, dequantizes each tensor to float32 (F32, F16, Q8_0, Q4_0 and Q4_1 are supported;
another type is a `CheckpointError` naming it) and assigns it by name, checking that every
tensor is used once and that each shape fits.

Two things differ from Hugging Face's layout (`zoo/checkpoints/gpt.py`):
  - GGUF lists dimensions innermost first; `gguf.GGUFReader` gives numpy arrays in the usual
    order, so a weight is `[out, in]` as in torch.
  - llama.cpp's converter permutes the rows of the query and key weights of each head from
    rotate-half order (Hugging Face, `RotaryEmbedding`) to interleaved pairs. `unpermute`
    undoes it: `[h, 2, d/2] -> [h, d/2, 2]` per head becomes `[h, d/2, 2] -> [h, 2, d/2]`,
    with `head_count` heads for queries and `head_count_kv` for keys.

Without an `output.weight` the head is tied to the token table. `gguf_vocabulary(path)`
returns the byte-level BPE vocabulary stored in the metadata (`tokenizer.ggml.tokens`,
`tokenizer.ggml.merges`).

Needs the `gguf` package (`pip install gguf`).
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zoo.checkpoints.gpt import STYLES, head_tensors, llama_tensors
from zoo.checkpoints.tensors import CheckpointError, assign
from zoo.registry import build

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")


def from_gguf(path, task=None, **overrides):
    """Build a zoo model from a GGUF file and load its (dequantized) weights.

    Args:
        path: a `.gguf` file of a Llama-architecture model (Llama, SmolLM2, ...).
        task: None or `"causal_lm"` for the language model the file is; `"backbone"` the
            backbone alone; another task of the `gpt` family (`"classifier"`) loads the
            backbone and starts its head from scratch.
        **overrides: config fields and task arguments, as in `zoo.build`.

    Returns:
        The model, its weights dequantized to float32 (cast to `dtype` if one is given).
    """
    reader = read(path)
    fields = llama_fields(reader, path)
    by_name = {tensor.name: tensor for tensor in reader.tensors}
    check_types(by_name, path)
    task = "causal_lm" if task is None else task
    if "output.weight" in by_name:
        fields["tie_word_embeddings"] = False
    model = build("gpt", size="gpt2", task=None if task == "backbone" else task,
                      **{**fields, **overrides})
    backbone = model if task == "backbone" else model.backbone
    specs = llama_tensors(backbone, gguf_names=True)
    if task == "causal_lm":
        specs += head_tensors(model, gguf_names=True)
    else:  # the head is not wanted
        by_name.pop("output.weight", None)
    c = backbone.config
    assign(Dequantized(by_name, c.num_heads, c.kv_heads), specs, path)
    return model


def gguf_vocabulary(path):
    """`(tokens, merges)` of a GGUF file's tokenizer: lists of strings, merges as `"a b"`.

    For byte-level BPE models (`tokenizer.ggml.model == "gpt2"`, as SmolLM2) tokens use
    GPT-2's byte-to-unicode alphabet (`"Ġ"` is a space). `merges` is empty when the file has
    none (SentencePiece vocabularies).
    """
    reader = read(path)
    tokens = reader.get_field("tokenizer.ggml.tokens")
    if tokens is None:
        raise CheckpointError(f"{path} has no tokenizer.ggml.tokens: it carries no vocabulary.")
    merges = reader.get_field("tokenizer.ggml.merges")
    return list(tokens.contents()), [] if merges is None else list(merges.contents())


def read(path):
    """A `gguf.GGUFReader`; a missing, truncated or non-GGUF file is a `CheckpointError`."""
    try:
        import gguf
    except ImportError:
        raise ImportError("Reading GGUF files needs the `gguf` package: pip install gguf") \
            from None
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file.")
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError, TypeError, OverflowError) as error:
        raise CheckpointError(
            f"{path} cannot be read as GGUF ({type(error).__name__}: {error}): it is not a GGUF "
            "file, or it is truncated or corrupt: download it again."
        ) from None


def metadata(reader, key, path, default=None):
    field = reader.get_field(key)
    if field is None:
        if default is not None:
            return default
        raise CheckpointError(f"{path} lacks the metadata key {key!r}; the file is incomplete.")
    return field.contents()


def llama_fields(reader, path):
    """`GPTConfig` fields from the metadata of a Llama-architecture GGUF file."""
    architecture = metadata(reader, "general.architecture", path)
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{path} holds a {architecture!r} model; the zoo reads GGUF files of the "
            f"architectures {list(SUPPORTED_ARCHITECTURES)}."
        )

    def get(key, default=None):
        return metadata(reader, f"{architecture}.{key}", path, default)

    hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
    kv_heads = int(get("attention.head_count_kv", heads))
    head_dim = hidden // heads
    unsupported = []
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        value = get(key, head_dim)
        if int(value) != head_dim:
            unsupported.append(f"{architecture}.{key}={value} (the zoo rotates and attends "
                               f"with head_dim = embedding_length / head_count = {head_dim})")
    scaling = get("rope.scaling.type", "none")
    if scaling != "none":
        unsupported.append(f"{architecture}.rope.scaling.type={scaling!r}")
    experts = int(get("expert_count", 0))
    if experts:
        unsupported.append(f"{architecture}.expert_count={experts} (mixture of experts)")
    if unsupported:
        raise CheckpointError(f"{path} uses features the zoo's GPT does not implement: "
                              f"{'; '.join(unsupported)}.")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    vocabulary = len(tokens.data) if tokens is not None else int(get("vocab_size"))
    theta = float(get("rope.freq_base", 10000.0))
    return {
        "vocabulary_size": vocabulary,
        "num_layers": int(get("block_count")),
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "hidden_dim": hidden,
        "intermediate_dim": int(get("feed_forward_length")),
        "max_sequence_length": int(get("context_length", 2048)),
        "layer_norm_epsilon": float(get("attention.layer_norm_rms_epsilon")),
        "rotary_max_wavelength": int(theta) if theta.is_integer() else theta,
        "dropout": 0.0,
        "tie_word_embeddings": True,
        **STYLES["llama"],
    }


def check_types(tensors, path):
    unsupported = {name: t.tensor_type.name for name, t in tensors.items()
                   if t.tensor_type.name not in SUPPORTED_TYPES}
    if unsupported:
        raise CheckpointError(
            f"{path} has tensors of types the zoo cannot dequantize: {unsupported}. Supported: "
            f"{list(SUPPORTED_TYPES)}; re-quantize the model to one of them (llama.cpp's "
            "`llama-quantize`)."
        )


def unpermute(weight, num_heads):
    """Undo llama.cpp's `permute`: rows of each head from interleaved pairs back to
    rotate-half order. `weight` is `[num_heads * head_dim, ...]`."""
    rows = weight.shape[0]
    return (weight.reshape(num_heads, rows // num_heads // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


class Dequantized(Mapping):
    """Tensor name -> float32 array, dequantized when read; query and key weights unpermuted."""

    def __init__(self, tensors, num_heads, num_kv_heads):
        self.tensors = tensors
        self.heads = {"attn_q.weight": num_heads, "attn_k.weight": num_kv_heads}

    def __getitem__(self, name):
        from gguf.quants import dequantize

        tensor = self.tensors[name]
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype="float32")
        # "blk.3.attn_q.weight" -> "attn_q.weight"
        heads = self.heads.get(name.split(".", 2)[-1]) if name.startswith("blk.") else None
        if heads and array.ndim == 2 and array.shape[0] % (2 * heads) == 0:
            array = unpermute(array, heads)  # a misshapen one is left for `assign` to name
        return array

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self):
        return len(self.tensors)
