"""Packing token ids into fixed-length model inputs, and the small conversions every
preprocessor shares (one example or a batch in, the `(x, y, sample_weight)` tuple out).

>>> import tensorflow as tf
>>> ids, segments, mask = pack([tf.ragged.constant([[7, 8, 9]])], 6, start_id=1, end_id=2,
...                            pad_id=0)
>>> ids.numpy().tolist(), mask.numpy().tolist()
([[1, 7, 8, 9, 2, 0]], [[1, 1, 1, 1, 1, 0]])
"""

import tensorflow as tf
import tensorflow_text as tf_text

SEED_MAX = 2**31 - 1


def as_output(x, y=None, sample_weight=None):
    if y is None:
        return x
    if sample_weight is None:
        return x, y
    return x, y, sample_weight


def as_strings(inputs):
    """A string tensor as a batch [n] and whether it was one scalar example."""
    if isinstance(inputs, tf.RaggedTensor):
        raise ValueError("pass text as a string or a 1-D batch of strings, not a ragged tensor.")
    inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
    if inputs.shape.rank == 0:
        return inputs[tf.newaxis], True
    if inputs.shape.rank != 1:
        raise ValueError(f"text must be a string or a 1-D batch of strings, got {inputs.shape}.")
    return inputs, False


def as_labels(labels, scalar, dtype=tf.int32):
    """Labels (or weights) as `dtype`, with a batch axis when the example came alone."""
    if labels is None:
        return None
    labels = tf.cast(tf.convert_to_tensor(labels), dtype)
    return labels[tf.newaxis] if scalar else labels


def unbatch(outputs, scalar):
    return tf.nest.map_structure(lambda t: t[0], outputs) if scalar else outputs


def fill(rows, value):
    return tf.fill(tf.stack([rows, 1]), tf.constant(value, tf.int32))


def pad(ids, length, pad_id):
    """Ragged [batch, None] -> dense (ids, padding_mask) [batch, length]; position 0 is always
    real, so an empty sequence is one padding token that attention and pooling can use."""
    dense = ids.to_tensor(default_value=pad_id, shape=[None, length])
    mask = tf.ones_like(ids).to_tensor(default_value=0, shape=[None, length])
    first = tf.one_hot(tf.zeros([tf.shape(mask)[0]], tf.int32), length, dtype=tf.int32)
    return dense, tf.maximum(mask, first)


def pack(segments, sequence_length, start_id, end_id, pad_id):
    """Segments (ragged [batch, None] ids) -> `start a end b end`, truncated round robin so that
    the special tokens stay, padded: dense (token_ids, segment_ids, padding_mask)."""
    rows = segments[0].nrows(out_type=tf.int32)
    budget = sequence_length - (start_id is not None) - len(segments) * (end_id is not None)
    if budget < 0:
        raise ValueError(f"sequence_length {sequence_length} is too short for the special "
                         f"tokens of {len(segments)} segment(s); make it longer.")
    if len(segments) == 1:
        trimmed = [segments[0][:, :budget]]
    else:
        trimmed = tf_text.RoundRobinTrimmer(budget).trim(segments)
    pieces, segment_ids = [], []
    for index, segment in enumerate(trimmed):
        parts = [segment]
        if index == 0 and start_id is not None:
            parts.insert(0, fill(rows, start_id))
        if end_id is not None:
            parts.append(fill(rows, end_id))
        piece = tf.concat(parts, axis=1) if len(parts) > 1 else segment
        pieces.append(piece)
        segment_ids.append(piece * 0 + index)
    ids = tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]
    segment_ids = tf.concat(segment_ids, axis=1) if len(pieces) > 1 else segment_ids[0]
    token_ids, padding_mask = pad(ids, sequence_length, pad_id)
    segment_ids = segment_ids.to_tensor(default_value=0, shape=[None, sequence_length])
    return token_ids, segment_ids, padding_mask


def split_seed(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))

