"""Initializer handling shared by the layers."""

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer`, for one weight.

    An unseeded Keras initializer draws its seed once, when it is made, so one instance
    shared by several weights gives them equal values (query and key projections, or the gate
    and up projections of a gated network, would start identical). A copy made from its
    config draws its own seed.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


def truncated_normal(stddev=0.02):
    """A new `TruncatedNormal(stddev)`: BERT's, GPT-2's and ViT's weight initializer.

    A new instance per call, so that each weight draws its own values.

    >>> truncated_normal().get_config()["stddev"]
    0.02
    """
    return keras.initializers.TruncatedNormal(stddev=stddev)
