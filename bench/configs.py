"""The benchmarked workloads: one configuration per family, built both ours and keras-hub's.

A `Workload` holds the architecture (in the zoo's field names, which are keras-hub's), the
task, and the batch shape. `ours(w)` builds it with `zoo.build`, `keras_hub_model(w)` with
keras-hub's classes (an optional dependency: `pip install keras-transformers[bench]`), and
`batch(w)` makes one random in-memory batch `(x, y)` that both models take unchanged (the
zoo's input names are keras-hub's).

`WORKLOADS` are the issue's configurations; `QUICK` the same families, tiny, for smoke tests.

Example:

>>> w = QUICK["bert"]
>>> x, y = batch(w)
>>> sorted(x), x["token_ids"].shape, y.shape
(['padding_mask', 'segment_ids', 'token_ids'], (4, 16), (4,))
>>> tokens_per_example(w), tokens_per_example(QUICK["t5"])
(16, 24)
"""

import dataclasses
import importlib.util
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One model and batch shape to measure.

    Args:
        family: a zoo family (`"bert"`, `"gpt"`, `"t5"`, `"vit"`).
        task: a zoo task (`"classifier"`, `"causal_lm"`, `"seq2seq_lm"`).
        num_layers, num_heads, hidden_dim, intermediate_dim: the architecture.
        batch_size: examples per training step.
        vocabulary_size: text models.
        sequence_length: text models: tokens per example (the encoder's for T5).
        decoder_length: T5: decoder tokens per example.
        image_size, patch_size, channels: ViT: square images of `image_size` pixels.
        num_classes: classifiers.
        max_sequence_length: BERT and GPT: rows of the learned position table (TFLite
            exports take `min(128, max_sequence_length)` tokens).
    """

    family: str
    task: str
    num_layers: int
    num_heads: int
    hidden_dim: int
    intermediate_dim: int
    batch_size: int
    vocabulary_size: int = 0
    sequence_length: int = 0
    decoder_length: int = 0
    image_size: int = 0
    patch_size: int = 0
    channels: int = 3
    num_classes: int = 2
    max_sequence_length: int = 512

    @property
    def is_image(self):
        return self.family == "vit"

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads


_TEXT = dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024,
             sequence_length=128, batch_size=16, vocabulary_size=8192)
WORKLOADS = {
    "bert": Workload("bert", "classifier", **_TEXT),
    "gpt": Workload("gpt", "causal_lm", max_sequence_length=1024, **_TEXT),
    "t5": Workload("t5", "seq2seq_lm", decoder_length=32, **_TEXT),
    "vit": Workload("vit", "classifier", num_layers=6, num_heads=3, hidden_dim=192,
                    intermediate_dim=768, image_size=32, patch_size=4, batch_size=64,
                    num_classes=10),
}
_TINY = dict(num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64, sequence_length=16,
             batch_size=4, vocabulary_size=256, max_sequence_length=16)
QUICK = {
    "bert": Workload("bert", "classifier", **_TINY),
    "gpt": Workload("gpt", "causal_lm", **_TINY),
    "t5": Workload("t5", "seq2seq_lm", decoder_length=8, **_TINY),
    "vit": Workload("vit", "classifier", num_layers=1, num_heads=2, hidden_dim=32,
                    intermediate_dim=64, image_size=16, patch_size=4, batch_size=8,
                    num_classes=10),
}


def workloads(quick=False):
    """The issue's workloads, or their tiny versions when `quick`."""
    return QUICK if quick else WORKLOADS


def keras_hub_available():
    """Whether keras-hub is installed (without importing it)."""
    return importlib.util.find_spec("keras_hub") is not None


def tokens_per_example(w):
    """Positions one example runs through the model: text tokens (encoder + decoder for
    T5), or patches plus the class token for ViT."""
    if w.is_image:
        return (w.image_size // w.patch_size) ** 2 + 1
    return w.sequence_length + w.decoder_length


# --- ours ----------------------------------------------------------------------------------


def ours(w, **changes):
    """Our model of `w` (`zoo.build`); `changes` replace workload fields first."""
    import zoo

    w = dataclasses.replace(w, **changes)
    shared = dict(num_layers=w.num_layers, num_heads=w.num_heads, hidden_dim=w.hidden_dim,
                  intermediate_dim=w.intermediate_dim)
    if w.family == "bert":
        return zoo.build("bert", "mini", task="classifier", num_classes=w.num_classes,
                         vocabulary_size=w.vocabulary_size,
                         max_sequence_length=w.max_sequence_length, **shared)
    if w.family == "gpt":
        return zoo.build("gpt", "gpt2", task="causal_lm", vocabulary_size=w.vocabulary_size,
                         max_sequence_length=w.max_sequence_length, **shared)
    if w.family == "t5":  # T5 v1.0: relu, tied head; head_dim = hidden_dim / num_heads
        return zoo.build("t5", "small", task="seq2seq_lm", vocabulary_size=w.vocabulary_size,
                         head_dim=w.head_dim, **shared)
    if w.family == "vit":
        return zoo.build("vit", "s16", task="classifier", num_classes=w.num_classes,
                         image_shape=(w.image_size, w.image_size, w.channels),
                         patch_size=w.patch_size, position_image_size=None, **shared)
    raise ValueError(f"Unknown family {w.family!r}. Families: {sorted(WORKLOADS)}.")


# --- keras-hub's ---------------------------------------------------------------------------


def keras_hub_model(w):
    """keras-hub's model of `w`, without a preprocessor (it takes `batch(w)`'s inputs).

    Raises ImportError, saying how to install it, when keras-hub is missing.
    """
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "keras-hub is not installed: `pip install -e .[bench]` to compare against it."
        ) from error
    models = keras_hub.models
    if w.family == "bert":
        backbone = models.BertBackbone(
            vocabulary_size=w.vocabulary_size, num_layers=w.num_layers, num_heads=w.num_heads,
            hidden_dim=w.hidden_dim, intermediate_dim=w.intermediate_dim,
            max_sequence_length=w.max_sequence_length)
        return models.BertTextClassifier(backbone, w.num_classes, preprocessor=None)
    if w.family == "gpt":
        backbone = models.GPT2Backbone(
            vocabulary_size=w.vocabulary_size, num_layers=w.num_layers, num_heads=w.num_heads,
            hidden_dim=w.hidden_dim, intermediate_dim=w.intermediate_dim,
            max_sequence_length=w.max_sequence_length)
        return models.GPT2CausalLM(backbone, preprocessor=None)
    if w.family == "t5":
        backbone = models.T5Backbone(
            vocabulary_size=w.vocabulary_size, num_layers=w.num_layers, num_heads=w.num_heads,
            hidden_dim=w.hidden_dim, intermediate_dim=w.intermediate_dim,
            key_value_dim=w.head_dim, activation="relu", use_gated_activation=False,
            tie_embedding_weights=True)
        return models.T5Seq2SeqLM(backbone, preprocessor=None)
    if w.family == "vit":
        backbone = models.ViTBackbone(
            image_shape=(w.image_size, w.image_size, w.channels), patch_size=w.patch_size,
            num_layers=w.num_layers, num_heads=w.num_heads, hidden_dim=w.hidden_dim,
            mlp_dim=w.intermediate_dim)
        return models.ViTImageClassifier(backbone, w.num_classes, preprocessor=None)
    raise ValueError(f"Unknown family {w.family!r}. Families: {sorted(WORKLOADS)}.")


# --- data ----------------------------------------------------------------------------------


def batch(w, num_batches=1, seed=0):
    """`(x, y)` numpy arrays of `num_batches * batch_size` random examples of `w`."""
    rng = np.random.default_rng(seed)
    n = num_batches * w.batch_size

    def ids(length):
        return rng.integers(1, w.vocabulary_size, (n, length), dtype="int32")

    def ones(length):
        return np.ones((n, length), "int32")

    if w.family == "vit":
        images = rng.random((n, w.image_size, w.image_size, w.channels), dtype="float32")
        return images, rng.integers(0, w.num_classes, n, dtype="int32")
    s = w.sequence_length
    if w.family == "bert":
        x = {"token_ids": ids(s), "segment_ids": np.zeros((n, s), "int32"),
             "padding_mask": ones(s)}
        return x, rng.integers(0, w.num_classes, n, dtype="int32")
    if w.family == "gpt":
        tokens = ids(s + 1)
        return {"token_ids": tokens[:, :-1], "padding_mask": ones(s)}, tokens[:, 1:]
    if w.family == "t5":
        target = ids(w.decoder_length + 1)
        x = {"encoder_token_ids": ids(s), "encoder_padding_mask": ones(s),
             "decoder_token_ids": target[:, :-1], "decoder_padding_mask": ones(w.decoder_length)}
        return x, target[:, 1:]
    raise ValueError(f"Unknown family {w.family!r}. Families: {sorted(WORKLOADS)}.")
