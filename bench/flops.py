"""Model FLOPs of a training step, and the peak matmul FLOP/s of this machine.

Model FLOP utilization (MFU) = (FLOPs of one training step / seconds per step) / peak, where
the peak is what one large float32 matmul reaches under XLA in the same process
(`peak_matmul_flops`). Only matrix multiplications count (2 FLOPs per multiply-add);
norms, softmax, GELU, the optimizer update and embedding lookups do not, as in the usual
`6 N T` accounting and in the keras-hub figures the issue quotes.

The formula, for a batch of B examples, width d, feed-forward width f, L layers:

    training FLOPs = 3 x forward FLOPs            (the backward pass costs twice the forward:
                                                   gradients of inputs and of weights)
    forward FLOPs  = 2 x matmul weights applied per token x tokens   ("2 N T")
                   + per layer and sequence, attention scores and mixing: 2 x 2 x q x k x d

so `training = 6 N T + 12 L s^2 d B` for a self-attention stack of sequence length s, where
N counts the weights of every dense projection a token goes through:

- each block: 4 d^2 (query, key, value, output) + 2 d f (the two feed-forward matrices);
- BERT classifier: L blocks over s tokens; the pooler (d^2) and the classifier (d C) on the
  first token only;
- GPT causal LM: L blocks over s tokens, and the LM head (the tied token table, d V) on every
  token;
- T5: an encoder of L blocks over s tokens; a decoder of L blocks over t tokens, each with a
  cross attention whose query and output projections (2 d^2) run on the t decoder tokens,
  whose key and value projections (2 d^2) run on the s encoder tokens, and whose scores cost
  12 t s d per sequence in training; the LM head (d V) on the t decoder tokens;
- ViT classifier: the patch projection (p^2 c d, a matmul over each of the P = (image / p)^2
  patches), L blocks over P + 1 tokens (the class token), the classifier (d C) on one token.

Causal attention is counted in full (s^2, not s^2 / 2): both implementations compute the
whole score matrix and mask it.

Example (the GPT configuration of the issue):

>>> from bench import configs
>>> w = configs.WORKLOADS["gpt"]
>>> matmul_weights(w)["blocks"], matmul_weights(w)["head"]      # N per token
(3145728, 2097152)
>>> round(training_flops(w) / 1e9, 1)                           # GFLOPs per step of 16 x 128
67.6
"""

import time

import numpy as np


def block_weights(w):
    """Matmul weights of one transformer block: attention (4 d^2) + feed-forward (2 d f)."""
    d = w.hidden_dim
    return 4 * d * d + 2 * d * w.intermediate_dim


def matmul_weights(w):
    """`{part: weights}` of every dense projection of the model of workload `w`.

    Parts: `"blocks"` (all self-attention blocks), `"cross"` (T5's cross attentions), `"head"`
    (pooler + classifier, or the LM head), `"patches"` (ViT's patch projection). Their sum
    equals the sizes of the models' kernels (tests/bench/test_bench.py checks it).
    """
    d, L = w.hidden_dim, w.num_layers
    if w.family == "bert":
        return {"blocks": L * block_weights(w), "head": d * d + d * w.num_classes}
    if w.family == "gpt":
        return {"blocks": L * block_weights(w), "head": d * w.vocabulary_size}
    if w.family == "t5":
        return {"blocks": 2 * L * block_weights(w), "cross": L * 4 * d * d,
                "head": d * w.vocabulary_size}
    if w.family == "vit":
        return {"patches": w.patch_size ** 2 * w.channels * d, "blocks": L * block_weights(w),
                "head": d * w.num_classes}
    raise ValueError(f"No FLOP formula for family {w.family!r}: add one to bench/flops.py.")


def forward_flops(w):
    """Matmul FLOPs of one forward pass over a batch of workload `w`."""
    B, d, L = w.batch_size, w.hidden_dim, w.num_layers
    block = block_weights(w)

    def attention(queries, keys):  # scores q k^T and mixing p v, per layer and sequence
        return 2 * 2 * queries * keys * d

    if w.family in ("bert", "gpt"):
        s = w.sequence_length
        flops = L * (2 * block * B * s + B * attention(s, s))
        if w.family == "bert":
            return flops + 2 * B * (d * d + d * w.num_classes)
        return flops + 2 * B * s * d * w.vocabulary_size
    if w.family == "t5":
        s, t = w.sequence_length, w.decoder_length
        encoder = L * (2 * block * B * s + B * attention(s, s))
        decoder = L * (2 * block * B * t + B * attention(t, t))
        cross = L * (2 * 2 * d * d * B * t + 2 * 2 * d * d * B * s + B * attention(t, s))
        return encoder + decoder + cross + 2 * B * t * d * w.vocabulary_size
    if w.family == "vit":
        patches = (w.image_size // w.patch_size) ** 2
        s = patches + 1
        projection = 2 * B * patches * w.patch_size ** 2 * w.channels * d
        return projection + L * (2 * block * B * s + B * attention(s, s)) \
            + 2 * B * d * w.num_classes
    raise ValueError(f"No FLOP formula for family {w.family!r}: add one to bench/flops.py.")


def training_flops(w):
    """Matmul FLOPs of one training step (forward + backward) over a batch of `w`."""
    return 3 * forward_flops(w)


def peak_matmul_flops(size=2048, repeats=5):
    """`(median FLOP/s, [seconds per run])` of a float32 `[size, size] @ [size, size]`
    matmul compiled with XLA, on the current Keras backend (TensorFlow or JAX)."""
    matmul = _CompiledMatmul()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype="float32")
    b = rng.standard_normal((size, size), dtype="float32")
    a, b = matmul.to_device(a), matmul.to_device(b)
    matmul(a, b)  # compile
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b)
        runs.append(time.perf_counter() - start)
    return 2 * size ** 3 / float(np.median(runs)), runs


class _CompiledMatmul:
    """`a @ b` jit-compiled on the backend, waiting for the result."""

    def __init__(self):
        import keras

        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            fn = tf.function(tf.matmul, jit_compile=True)
            self.to_device = tf.constant
            self.run = lambda a, b: fn(a, b).numpy()
        elif backend == "jax":
            import jax

            fn = jax.jit(jax.numpy.matmul)
            self.to_device = jax.device_put
            self.run = lambda a, b: fn(a, b).block_until_ready()
        else:
            raise ValueError(f"The peak FLOP/s is measured under TensorFlow or JAX, not "
                             f"{backend!r}: set KERAS_BACKEND=tensorflow or jax.")

    def __call__(self, a, b):
        return self.run(a, b)
