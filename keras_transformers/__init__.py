"""keras_transformers: the transformer layers every zoo model is built from.

Pure `keras.ops`, so they run under the TensorFlow, JAX and PyTorch backends, and every
layer serializes (`get_config`, `.keras` round trip).
"""

from keras_transformers.attention import MultiHeadAttention, dot_product_attention
from keras_transformers.blocks import DecoderBlock, EncoderBlock
from keras_transformers.dropout import Dropout
from keras_transformers.embeddings import PatchEmbedding, TokenAndPositionEmbedding
from keras_transformers.feedforward import FeedForward
from keras_transformers.masks import causal_mask, merge_masks
from keras_transformers.normalization import RMSNorm
from keras_transformers.positions import (
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
    relative_position_bucket,
)

__all__ = [
    "DecoderBlock",
    "Dropout",
    "EncoderBlock",
    "FeedForward",
    "MultiHeadAttention",
    "PatchEmbedding",
    "PositionEmbedding",
    "RMSNorm",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionEncoding",
    "TokenAndPositionEmbedding",
    "causal_mask",
    "dot_product_attention",
    "merge_masks",
    "relative_position_bucket",
]
