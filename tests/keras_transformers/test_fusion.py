"""`unfused`: an optimization barrier only where TensorFlow compiles with XLA, and a decoding
step that puts every attention kernel behind one."""

import keras
import numpy as np
import pytest

from keras_transformers.fusion import unfused
from zoo import build

needs_tf = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                              reason="the barrier is TensorFlow's XLA op")


def barriers(function, *args):
    """Number of `XlaOptimizationBarrier` ops in the graph `function` traces for `args`,
    nested functions (a while loop's body) included."""
    graph = function.get_concrete_function(*args).graph
    graphs = [graph, *(f.graph for f in graph._functions.values() if hasattr(f, "graph"))]
    return sum(op.type == "XlaOptimizationBarrier" for g in graphs for op in g.get_operations())


def test_outside_xla_compilation_the_tensor_comes_back_as_it_is():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    assert unfused(x) is x


@needs_tf
def test_only_an_xla_compiled_function_gets_the_barrier_and_its_values_are_unchanged():
    import tensorflow as tf

    x = tf.constant(np.arange(6, dtype="float32").reshape(2, 3))
    compiled = tf.function(lambda t: unfused(t) * 2.0, jit_compile=True)
    plain = tf.function(lambda t: unfused(t) * 2.0)
    assert barriers(compiled, x) == 1 and barriers(plain, x) == 0
    np.testing.assert_array_equal(compiled(x).numpy(), 2.0 * x.numpy())
    np.testing.assert_array_equal(plain(x).numpy(), 2.0 * x.numpy())


@needs_tf
def test_a_compiled_decoding_step_keeps_each_attention_kernel_apart_and_training_none():
    import tensorflow as tf

    model = build("gpt", task="causal_lm")  # query, key, value and output kernel per layer
    layers = model.backbone.config.num_layers
    token = tf.constant([[5]], "int32")
    cache = model.make_cache(batch_size=1, max_length=8)

    def step(token, cache):
        return model.call_with_cache(token, cache, 3)[0]

    assert barriers(tf.function(step, jit_compile=True), token, cache) == 4 * layers
    assert barriers(tf.function(step), token, cache) == 0
    np.testing.assert_allclose(tf.function(step, jit_compile=True)(token, cache).numpy(),
                               tf.function(step)(token, cache).numpy(), atol=1e-5)
    x = {"token_ids": tf.constant([[5, 9, 2]]), "padding_mask": tf.ones((1, 3), "int32")}
    training = tf.function(lambda x: model(x, training=True), jit_compile=True)
    assert barriers(training, x) == 0
