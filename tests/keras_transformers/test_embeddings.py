"""Token and patch embeddings against numpy computations on the layers' own tables."""

import numpy as np
import pytest

from keras_transformers.embeddings import PatchEmbedding, TokenAndPositionEmbedding
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test

TOKEN_IDS = np.array([[3, 0, 9, 3, 7], [1, 2, 2, 8, 5]], "int32")


def sinusoids(length, hidden_dim, start=0):
    pos = np.arange(start, start + length)[:, None]
    i = np.arange(hidden_dim // 2)[None, :]
    angles = pos / 10000 ** (2 * i / hidden_dim)
    table = np.zeros((length, hidden_dim))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return table


# --- TokenAndPositionEmbedding ----------------------------------------------------------


def test_token_embedding_plus_learned_positions():
    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, hidden_dim=6)
    out = as_numpy(layer(TOKEN_IDS))
    tokens = as_numpy(layer.token_embedding.embeddings)
    positions = as_numpy(layer.position_embedding.embeddings)
    assert out.shape == (2, 5, 6)
    assert_close(out, tokens[TOKEN_IDS] + positions[None, :5])
    # start_index picks later rows of the position table.
    assert_close(layer(TOKEN_IDS, start_index=3), tokens[TOKEN_IDS] + positions[None, 3:8])


@pytest.mark.parametrize("jit", [False, True])
def test_ids_outside_the_table_embed_as_nan_compiled_too(jit):
    import keras

    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, hidden_dim=6)
    ids = np.array([[3, -1, 9], [10, 2, 2**31 - 1], [0, 9, 4]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=jit)
    out = model.predict(ids, verbose=0)
    assert np.isnan(out).any(axis=-1).tolist() == [[False, True, False], [True, False, True],
                                                   [False, False, False]]
    assert np.isnan(out[ids < 0]).all() and np.isfinite(out[2]).all()


def test_token_embedding_plus_sinusoidal_positions():
    layer = TokenAndPositionEmbedding(
        vocabulary_size=10, sequence_length=8, hidden_dim=6, position="sinusoidal"
    )
    out = as_numpy(layer(TOKEN_IDS, start_index=2))
    tokens = as_numpy(layer.token_embedding.embeddings)
    assert_close(out, tokens[TOKEN_IDS] + sinusoids(5, 6, start=2)[None])


def test_scale_by_sqrt_dim_scales_tokens_not_positions():
    layer = TokenAndPositionEmbedding(
        vocabulary_size=10, sequence_length=8, hidden_dim=16, position="sinusoidal",
        scale_by_sqrt_dim=True,
    )
    out = as_numpy(layer(TOKEN_IDS))
    tokens = as_numpy(layer.token_embedding.embeddings)
    assert_close(out, tokens[TOKEN_IDS] * 4.0 + sinusoids(5, 16)[None])


def test_position_none_is_token_lookup_only():
    layer = TokenAndPositionEmbedding(
        vocabulary_size=10, sequence_length=8, hidden_dim=6, position=None
    )
    out = as_numpy(layer(TOKEN_IDS))
    assert layer.position_embedding is None
    assert len(layer.weights) == 1
    assert_close(out, as_numpy(layer.token_embedding.embeddings)[TOKEN_IDS], atol=0, rtol=0)


@pytest.mark.parametrize("initializer", ["glorot_uniform", "random_normal"])
def test_token_and_position_tables_start_independent(initializer):
    # One shared unseeded Keras initializer would make the position table a copy (scaled)
    # of the first rows of the token table.
    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, hidden_dim=6,
                                      embeddings_initializer=initializer)
    layer(TOKEN_IDS)
    tokens = as_numpy(layer.token_embedding.embeddings)[:8].ravel()
    positions = as_numpy(layer.position_embedding.embeddings).ravel()
    assert abs(np.corrcoef(tokens, positions)[0, 1]) < 0.5


def test_unknown_position_kind_raises():
    with pytest.raises(ValueError, match="Unknown position 'rotary'"):
        TokenAndPositionEmbedding(10, 8, 6, position="rotary")


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_token_and_position_embedding_layer_contract(position, tmp_path):
    run_layer_test(
        lambda **kw: TokenAndPositionEmbedding(
            vocabulary_size=10, sequence_length=6, hidden_dim=4, position=position, **kw
        ),
        {"token_ids": TOKEN_IDS[:, :4]},
        expected_shape=(2, 4, 4),
        tmp_path=tmp_path,
    )


# --- PatchEmbedding ---------------------------------------------------------------------


def numpy_patch_projection(images, kernel, bias, patch):
    """Cut `patch x patch` tiles row by row, flatten (row, col, channel), project."""
    batch, height, width, channels = images.shape
    tiles = []
    for r in range(height // patch):
        for c in range(width // patch):
            tile = images[:, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch, :]
            tiles.append(tile.reshape(batch, patch * patch * channels))
    tiles = np.stack(tiles, axis=1)  # [batch, patches, patch * patch * channels]
    # Conv2D's kernel is [ph, pw, channels, hidden]: the same (row, col, channel) order.
    return tiles @ kernel.reshape(-1, kernel.shape[-1]) + bias


def built_patch_embedding(**kwargs):
    layer = PatchEmbedding(image_size=32, patch_size=8, hidden_dim=5, **kwargs)
    layer.build((None, 32, 32, 3))
    rng = np.random.default_rng(1)
    layer.projection.bias.assign(rng.normal(size=5).astype("float32"))
    if layer.use_class_token:
        layer.class_token.assign(rng.normal(size=(1, 1, 5)).astype("float32"))
    layer.position_embeddings.assign(
        rng.normal(size=layer.position_embeddings.shape).astype("float32")
    )
    return layer


def test_patch_embedding_matches_numpy_patches_class_token_and_positions():
    layer = built_patch_embedding()
    images = random_inputs(2, 32, 32, 3)
    out = as_numpy(layer(images))
    assert out.shape == (2, 17, 5)
    kernel = as_numpy(layer.projection.kernel)
    assert kernel.shape == (8, 8, 3, 5)
    projected = numpy_patch_projection(images, kernel, as_numpy(layer.projection.bias), 8)
    class_token = np.broadcast_to(as_numpy(layer.class_token), (2, 1, 5))
    tokens = np.concatenate([class_token, projected], axis=1)
    positions = as_numpy(layer.position_embeddings)
    assert_close(out, tokens + positions[None], atol=1e-4, rtol=1e-4)


def test_patch_embedding_without_class_token():
    layer = built_patch_embedding(use_class_token=False)
    images = random_inputs(1, 32, 32, 3, seed=3)
    out = as_numpy(layer(images))
    assert out.shape == (1, 16, 5)
    projected = numpy_patch_projection(
        images, as_numpy(layer.projection.kernel), as_numpy(layer.projection.bias), 8
    )
    assert_close(out, projected + as_numpy(layer.position_embeddings)[None], atol=1e-4,
                 rtol=1e-4)


def test_patch_embedding_at_original_size_uses_table_unchanged():
    layer = built_patch_embedding()
    assert_close(layer.positions_for_grid((4, 4)), layer.position_embeddings, atol=0, rtol=0)


def test_patch_embedding_at_larger_size_resizes_patch_positions_only():
    layer = built_patch_embedding(interpolation="bilinear")
    # Patch positions that vary by grid row only, the same in every channel.
    table = as_numpy(layer.position_embeddings).copy()
    rows = np.repeat(np.arange(4, dtype="float32"), 4)  # row of each patch, row-major
    table[1:] = rows[:, None] * np.ones(5, "float32")
    layer.position_embeddings.assign(table)

    images = random_inputs(2, 48, 48, 3)
    out = as_numpy(layer(images))
    assert out.shape == (2, 1 + 36, 5)
    # The class token keeps its own position.
    assert_close(out[:, 0], np.broadcast_to(as_numpy(layer.class_token)[0, 0] + table[0], (2, 5)))

    projected = numpy_patch_projection(
        images, as_numpy(layer.projection.kernel), as_numpy(layer.projection.bias), 8
    )
    positions = (out[:, 1:] - projected).reshape(2, 6, 6, 5)
    # Resizing a grid that varies by row only: same along each row, in every channel,
    # increasing from the first row to the last, within the old range.
    assert_close(positions, np.broadcast_to(positions[:, :, :1, :1], positions.shape),
                 atol=1e-4)
    row_values = positions[0, :, 0, 0]
    assert np.all(np.diff(row_values) > 0), row_values
    assert row_values[0] >= -1e-4 and row_values[-1] <= 3 + 1e-4
    assert_close(positions[0], positions[1], atol=1e-4)


def test_patch_embedding_image_size_not_multiple_of_patch_size_raises():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        PatchEmbedding(image_size=30, patch_size=8, hidden_dim=4)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        PatchEmbedding(image_size=(32, 30), patch_size=8, hidden_dim=4)


def test_patch_embedding_rejects_images_that_do_not_split_into_patches():
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=4)
    with pytest.raises(ValueError, match="do not split"):
        layer(np.zeros((1, 20, 16, 3), "float32"))


def test_patch_embedding_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: PatchEmbedding(image_size=8, patch_size=4, hidden_dim=6, **kw),
        {"images": random_inputs(2, 8, 8, 3)},
        expected_shape=(2, 5, 6),
        tmp_path=tmp_path,
    )



def test_reverse_gives_vocabulary_logits_through_the_token_table():
    layer = TokenAndPositionEmbedding(vocabulary_size=11, sequence_length=4, hidden_dim=6)
    layer(np.array([[1, 2]], "int32"))
    hidden = random_inputs(2, 3, 6)
    table = as_numpy(layer.token_embedding.embeddings)
    assert_close(layer(hidden, reverse=True), hidden @ table.T)
