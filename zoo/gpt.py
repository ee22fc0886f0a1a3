"""GPT: a pre-norm decoder-only transformer that is GPT-2 or Llama by its config.

GPT-2 (Radford et al., 2019), as Hugging Face's `GPT2Model`: token + learned position
embeddings, dropout, pre-norm decoder blocks (LayerNorm epsilon 1e-5, tanh GELU, biases
everywhere) and a final LayerNorm. Llama (Touvron et al., 2023), as `LlamaModel`: no position
embeddings but rotary ones (rotate-half) in attention, RMSNorm, SwiGLU, no biases, grouped KV
heads, a final RMSNorm. The language-model head is the token table (tied) or, with
`tie_word_embeddings=False`, a separate `Dense(vocabulary_size, use_bias=False)`.

Presets reproduce the reference sizes: `gpt2` has 124,439,808 parameters, `gpt2-medium`
354,823,168, `smollm2-135m` 134,515,008 (SmolLM2-135M, Llama style, tied).

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
>>> inputs = {"token_ids": np.array([[5, 9, 2]]), "padding_mask": np.ones((1, 3), "int32")}
>>> tuple(model.predict(inputs, verbose=0).shape)      # next-token logits at every position
(1, 3, 1024)
>>> cache = model.make_cache(batch_size=1, max_length=8)  # [batch, layers, 2, 8, kv_heads, 8]
>>> logits, cache = model.call_with_cache(inputs["token_ids"], cache, cache_index=0)
>>> logits, cache = model.call_with_cache(np.array([[7]]), cache, cache_index=3)
>>> tuple(logits.shape), tuple(cache.shape)
((1, 1, 1024), (1, 2, 2, 8, 2, 8))
"""

from dataclasses import dataclass

import keras
from keras import ops

from keras_transformers import DecoderBlock, Dropout, TokenAndPositionEmbedding
from keras_transformers.blocks import NORMS, make_norm
from keras_transformers.feedforward import ACTIVATIONS
from keras_transformers.initializers import truncated_normal
from zoo.backbone import Backbone
from zoo.config import Family, check_heads_divide, check_positive
from zoo.heads import Classifier
from zoo.task import GenerativeTask

PACKAGE = "zoo"
POSITIONS = ("learned", "rotary")


@dataclass(frozen=True)
class GPTConfig:
    """The architecture; defaults are GPT-2 (124M), `LLAMA_STYLE` turns it into Llama.

    Args:
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim: the sizes.
        num_kv_heads: key/value heads (grouped-query attention); `num_heads` when None.
        max_sequence_length: rows of the learned position table (`position="learned"`).
        dropout: on the embeddings, the attention probabilities and each sublayer's output.
        layer_norm_epsilon: of every norm, LayerNorm or RMSNorm.
        position: `"learned"` (GPT-2) or `"rotary"` (Llama).
        rotary_max_wavelength: the rotary base (`rope_theta`).
        norm: `"layer_norm"` or `"rms_norm"`.
        activation: of the feed-forward network: `"gelu_tanh"` (GPT-2), `"swiglu"` (Llama), ...
        use_bias: biases in projections and LayerNorms.
        tie_word_embeddings: the language-model head is the token table.
    """

    vocabulary_size: int = 50257
    num_layers: int = 12
    num_heads: int = 12
    num_kv_heads: int | None = None
    hidden_dim: int = 768
    intermediate_dim: int = 3072
    max_sequence_length: int = 1024
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    position: str = "learned"
    rotary_max_wavelength: int = 10000
    norm: str = "layer_norm"
    activation: str = "gelu_tanh"
    use_bias: bool = True
    tie_word_embeddings: bool = True

    def __post_init__(self):
        check_positive(self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim", "max_sequence_length")
        if self.num_kv_heads is not None:
            check_positive(self, "num_kv_heads")
        for name, valid in (("position", POSITIONS), ("norm", NORMS),
                            ("activation", tuple(sorted(ACTIVATIONS)))):
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"GPTConfig.{name} must be one of {valid}, got {getattr(self, name)!r}."
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        check_heads_divide(self)
        if self.position == "rotary" and self.head_dim % 2:
            raise ValueError(
                f"GPTConfig: rotary positions rotate channel pairs, but hidden_dim="
                f"{self.hidden_dim} / num_heads={self.num_heads} gives an odd head_dim "
                f"{self.head_dim}. Change num_heads or hidden_dim."
            )

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def kv_heads(self):
        """Key/value heads: `num_kv_heads`, or `num_heads` when that is None."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads


LLAMA_STYLE = dict(position="rotary", norm="rms_norm", activation="swiglu", use_bias=False,
                   dropout=0.0)

PRESETS = {
    "tiny": GPTConfig(vocabulary_size=1024, num_layers=2, num_heads=2, hidden_dim=32,
                      intermediate_dim=64, max_sequence_length=128),
    "tiny_llama": GPTConfig(vocabulary_size=1024, num_layers=2, num_heads=4, num_kv_heads=2,
                            hidden_dim=32, intermediate_dim=64, max_sequence_length=128,
                            **LLAMA_STYLE),
    "gpt2": GPTConfig(),
    "gpt2-medium": GPTConfig(num_layers=24, num_heads=16, hidden_dim=1024,
                             intermediate_dim=4096),
    "smollm2-135m": GPTConfig(vocabulary_size=49152, num_layers=30, num_heads=9,
                              num_kv_heads=3, hidden_dim=576, intermediate_dim=1536,
                              max_sequence_length=8192, rotary_max_wavelength=100000,
                              **LLAMA_STYLE),
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GPTBackbone(Backbone):
    """Inputs `token_ids` and `padding_mask` (int32 `[batch, length]`); output
    `sequence_output` `[batch, length, hidden_dim]`, after the final norm.

    Args:
        config: a `GPTConfig`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.

    Layers by name: `token_embedding` (a `TokenAndPositionEmbedding`, with learned positions
    or none), `transformer_layer_{i}` (pre-norm `DecoderBlock`s), `final_norm`;
    `hidden_states` runs them, for the graph and for cached decoding alike.
    """

    family_name = "gpt"
    config_class = GPTConfig

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.token_embedding = TokenAndPositionEmbedding(
            c.vocabulary_size, c.max_sequence_length, c.hidden_dim,
            position="learned" if c.position == "learned" else None,
            embeddings_initializer=truncated_normal(), dtype=dtype, name="token_embedding",
        )
        self.embeddings_dropout = Dropout(c.dropout, dtype=dtype)
        self.transformer_layers = [
            DecoderBlock(
                c.num_heads, c.intermediate_dim, activation=c.activation, norm_first=True,
                norm=c.norm, epsilon=c.layer_norm_epsilon, dropout=c.dropout,
                attention_dropout=c.dropout, use_bias=c.use_bias, num_kv_heads=c.num_kv_heads,
                use_rotary=c.position == "rotary", rotary_max_wavelength=c.rotary_max_wavelength,
                kernel_initializer=truncated_normal(), dtype=dtype, name=f"transformer_layer_{i}",
            )
            for i in range(c.num_layers)
        ]
        self.final_norm = make_norm(c.norm, c.layer_norm_epsilon, c.use_bias, dtype, "final_norm")

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": self.hidden_states(token_ids, padding_mask)},
            config=config, dtype=dtype, **kwargs,
        )

    def hidden_states(self, token_ids, padding_mask=None, cache=None, cache_index=0):
        """The network: token embedding, the transformer layers, the final norm.

        The functional graph is this on the whole sequence; cached decoding
        (`CausalLM.hidden_with_cache`) runs it on the newest tokens. (Not named `forward`:
        on the torch backend that is the `torch.nn.Module` method a layer call runs.)

        Args:
            token_ids: int `[batch, length]`, at positions `cache_index ...`.
            padding_mask: `[batch, length]` (or, with `cache`, `[batch, max_length]` over
                every cache position), 1 for real tokens; all real when None.
            cache: None, or a list of the layers' caches `[batch, 2, max_length, kv_heads,
                head_dim]`.
            cache_index: position of the first token; an int or an int32 scalar.

        Returns:
            The hidden states `[batch, length, hidden_dim]`, after the final norm; with
            `cache`, also the list of the layers' updated caches.
        """
        x = self.token_embedding(token_ids, start_index=cache_index)
        x = self.embeddings_dropout(x)  # the identity unless training
        layer_caches = []
        for i, layer in enumerate(self.transformer_layers):
            if cache is None:
                x = layer(x, padding_mask=padding_mask)
            else:
                x, layer_cache = layer(x, padding_mask=padding_mask, cache=cache[i],
                                       cache_index=cache_index)
                layer_caches.append(layer_cache)
        hidden = self.final_norm(x)
        return hidden if cache is None else (hidden, layer_caches)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CausalLM(GenerativeTask):
    """Next-token prediction: logits `[batch, length, vocabulary_size]` at every position.

    The head is the token table (`tie_word_embeddings=True`, as GPT-2 and SmolLM2) or a
    `Dense(vocabulary_size, use_bias=False)` named `lm_head`. Train with `x` the backbone's
    inputs, `y` the next tokens and `sample_weight` the padding mask of `y`.

    Args:
        backbone: a `GPTBackbone`.

    Decoding with a cache: `make_cache(batch_size, max_length)` allocates one tensor
    `[batch, num_layers, 2, max_length, kv_heads, head_dim]` (per layer: keys, then values);
    `call_with_cache(token_ids, cache, cache_index)` runs the new tokens (a prompt, then one
    token per step) and returns their logits and the updated cache. The cache may also be a
    list of the layers' caches `[batch, 2, max_length, kv_heads, head_dim]` (what a decoding
    loop carries: each layer's new keys and values are then written in place, instead of
    the whole cache being copied at every step); `hidden_with_cache` returns the final hidden
    states instead of the logits.
    """

    task_name = "causal_lm"

    def __init__(self, backbone, **kwargs):
        c = backbone.config
        self.backbone = backbone
        self.lm_head = None if c.tie_word_embeddings else keras.layers.Dense(
            c.vocabulary_size, use_bias=False, kernel_initializer=truncated_normal(),
            dtype=backbone.build_dtype, name="lm_head",
        )
        inputs = backbone.input
        logits = self.lm_logits(backbone(inputs)["sequence_output"])
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)

    def lm_logits(self, hidden):
        """Vocabulary logits of hidden states `[batch, length, hidden_dim]` or `[batch, dim]`."""
        if self.lm_head is None:
            return self.backbone.token_embedding(hidden, reverse=True)
        return self.lm_head(hidden)

    def make_cache(self, batch_size, max_length):
        """An empty cache for sequences of up to `max_length` tokens, in the compute dtype."""
        c = self.backbone.config
        # (`max_length` is a tensor in the exported generate signature, which checks it.)
        if c.position == "learned" and not ops.is_tensor(max_length) and \
                max_length > c.max_sequence_length:
            raise ValueError(
                f"max_length {max_length} exceeds the {c.max_sequence_length} learned "
                f"positions of this model. Ask for at most {c.max_sequence_length} tokens."
            )
        shape = (batch_size, c.num_layers, 2, max_length, c.kv_heads, c.head_dim)
        return ops.zeros(shape, dtype=self.backbone.build_dtype.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_index, padding_mask=None):
        """Logits of `token_ids` at positions `cache_index...`, and the cache holding them.

        Args:
            token_ids: int `[batch, new_tokens]`.
            cache: from `make_cache` or the previous call (or a list of the layers' caches).
            cache_index: position of the first new token; an int or an int32 scalar.
            padding_mask: `[batch, max_length]`, 1 for real tokens at every cache position
                (prompts of different lengths); all real when None. Positions after the new
                tokens are hidden by the causal mask whatever it says.

        Returns:
            `(logits, cache)`: `[batch, new_tokens, vocabulary_size]` and the updated cache,
            in the form it came in.
        """
        hidden, cache = self.hidden_with_cache(token_ids, cache, cache_index, padding_mask)
        return self.lm_logits(hidden), cache

    def hidden_with_cache(self, token_ids, cache, cache_index, padding_mask=None):
        """As `call_with_cache`, but the final hidden states `[batch, new_tokens,
        hidden_dim]` instead of the logits (for the logits of some positions only)."""
        per_layer = isinstance(cache, (list, tuple))
        if not per_layer:
            cache = [cache[:, i] for i in range(self.backbone.config.num_layers)]
        hidden, layer_caches = self.backbone.hidden_states(token_ids, padding_mask, cache,
                                                           cache_index)
        return hidden, layer_caches if per_layer else ops.stack(layer_caches, axis=1)


def classifier(backbone, num_classes, pooling="last_token", dropout=0.0):
    """Classify by the last real token, as `GPT2ForSequenceClassification` (no dropout)."""
    return Classifier(backbone, num_classes, pooling=pooling, dropout=dropout)


TASKS = {"causal_lm": CausalLM, "classifier": classifier}
FAMILY = Family("gpt", GPTConfig, PRESETS, GPTBackbone, TASKS)
