"""The named serving signatures of a zoo model, per task, with preprocessing inside the graph.

`endpoints(model)` returns the `Endpoint`s (name, function, input specs) that
`export.saved_model` adds to the SavedModel:

| model | raw-input signature | model inputs |
|---|---|---|
| text classifier | `serving_default(text)`: logits, probabilities, label id, name | `token_ids` |
| token classifier | `serving_default(text)`: words, byte offsets, a tag per word | `token_ids` |
| masked LM | `fill_mask(text)` with `[MASK]` in it: top-k tokens per mask | `token_ids` |
| question answering | `answer(question, context)`: answer text, byte offsets, score | `token_ids` |
| backbone (text) | `embed(text)`: mean of the real tokens, L2-normalized | `token_ids` |
| image classifier | `serving_default(image_bytes)`: JPEG/PNG/GIF/BMP/WebP | `pixels` |
| causal / seq2seq LM | (their `generate` is `export.generation`'s) | `token_ids` |

Raw-input signatures need `model.preprocessor` (text; images get a default one that only
resizes and scales to [0, 1]); the model-input signature is always there and takes exactly
what the Keras model takes (`padding_mask` 1 for real tokens), and checks it in the graph
before the model runs (`export.input_checks.checked_inputs`, the limits of
`zoo.validation.input_limits`): an id outside the vocabulary, a mask value other than 0 / 1,
a segment id outside the segments, more positions than a learned position table, a mask
position outside the sequence or a mask of another shape than its ids fails the call with
`InvalidArgumentError` naming the input, the bad value and the valid range. The raw-input
signatures take ids from their own tokenizer. Where a model has no raw-input signature, TF
Serving's `serving_default` is its first signature.

Example:

>>> import zoo
>>> [e.name for e in endpoints(zoo.build("vit", task="classifier", num_classes=3))]
['serving_default', 'pixels']
"""

from dataclasses import dataclass

import tensorflow as tf
import tensorflow_text as tf_text

from export.input_checks import checked_inputs
from zoo.backbone import Backbone
from zoo.heads import pool
from zoo.preprocessing.answers import best_answers
from zoo.preprocessing.for_model import default_image_preprocessor, is_image_model
from zoo.preprocessing.packing import pack

TOP_K = 5
TEXT = tf.TensorSpec([None], tf.string, name="text")
QUESTION = tf.TensorSpec([None], tf.string, name="question")
CONTEXT = tf.TensorSpec([None], tf.string, name="context")
IMAGE_BYTES = tf.TensorSpec([None], tf.string, name="image_bytes")


@dataclass
class Endpoint:
    """One signature: `fn(*inputs)` returns a dict of named outputs."""

    name: str
    fn: object
    input_signature: list
    uses: tuple = ()  # layers the function calls besides the model (to track)


def task_of(model):
    """The kind of model, one of: text_classifier, image_classifier, token_classifier,
    masked_lm, question_answering, causal_lm, seq2seq_lm, backbone (the task's `task_name`,
    with classifiers told apart by their input)."""
    if isinstance(model, Backbone):
        return "backbone"
    task = getattr(model, "task_name", None)
    if task is None:
        raise ValueError(
            f"Cannot export a {type(model).__name__}: give a zoo model (zoo.build(name, "
            "task=...), training.runs.load_model(path))."
        )
    if task == "classifier":
        return "image_classifier" if is_image_model(model) else "text_classifier"
    return task


def model_input_specs(model, sequence_length=None, num_masks=None):
    """`tf.TensorSpec`s of the model's inputs, by name: `[batch, sequence_length]` int32 for
    text (`None`: any length; `mask_positions` `[batch, num_masks]`), `[batch, h, w, c]`
    float32 `pixels` for images."""
    if is_image_model(model):
        return {"pixels": tf.TensorSpec([None, *model.input.shape[1:]], tf.float32,
                                        name="pixels")}
    lengths = {"mask_positions": num_masks}
    return {
        name: tf.TensorSpec([None, lengths.get(name, sequence_length)],
                            tensor.dtype, name=name)
        for name, tensor in model.input.items()
    }


def label_names(model):
    """The class names of a classifier: `model.label_names` when set, else `LABEL_<i>`
    (Hugging Face's default names)."""
    names = getattr(model, "label_names", None)
    if names is None:
        return [f"LABEL_{i}" for i in range(model.num_classes)]
    names = [str(n) for n in names]
    if len(names) != model.num_classes:
        raise ValueError(f"model.label_names has {len(names)} names for {model.num_classes} "
                         "classes: give one name per class.")
    return names


def classification_outputs(logits, names):
    """logits -> logits, softmax probabilities, the top label id and its name."""
    label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            "label_id": label_id, "label_name": tf.gather(tf.constant(names), label_id)}


def endpoints(model):
    """The signatures of `model` (see the module docstring), raw-input ones first."""
    task = task_of(model)
    run = _model_runner(model, task)
    specs = model_input_specs(model)
    names = list(specs)

    def run_checked(*tensors):
        return run(checked_inputs(model, structure(names, tensors)))

    model_inputs = Endpoint("pixels" if is_image_model(model) else "token_ids", run_checked,
                            list(specs.values()))
    raw = _raw_endpoints(model, task, run)
    return [*raw, model_inputs]


def structure(names, tensors):
    """The signature's positional tensors as the Keras model's input: a dict, or `pixels`."""
    return tensors[0] if names == ["pixels"] else dict(zip(names, tensors, strict=True))


def named_outputs(model, outputs):
    """The model's outputs by name, as every artifact (SavedModel, TFLite) gives them: a
    backbone's dict, a question answerer's `start_logits` and `end_logits` `[batch, length]`,
    else `logits`. `outputs` may be tensors or numpy arrays."""
    task = task_of(model)
    if task == "backbone":
        return dict(outputs)
    if task == "question_answering":
        return {"start_logits": outputs[:, 0], "end_logits": outputs[:, 1]}
    return {"logits": outputs}


def _model_runner(model, task):
    """inputs -> the dict of named outputs the model-input signature returns."""
    if task in ("text_classifier", "image_classifier"):
        names = label_names(model)
        return lambda inputs: classification_outputs(model(inputs, training=False), names)
    return lambda inputs: named_outputs(model, model(inputs, training=False))


def _raw_endpoints(model, task, run):
    preprocessor = getattr(model, "preprocessor", None)
    if task == "image_classifier":
        preprocessor = preprocessor or default_image_preprocessor(model)
        return [Endpoint("serving_default", lambda images: run(preprocessor(images)),
                         [IMAGE_BYTES], uses=(preprocessor,))]
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        return []
    uses = (preprocessor,)
    if task == "text_classifier":
        return [Endpoint("serving_default", lambda text: run(preprocessor(text)), [TEXT], uses)]
    if task == "token_classifier":
        return [Endpoint("serving_default", word_tagger(model, preprocessor), [TEXT], uses)]
    if task == "masked_lm":
        return [Endpoint("fill_mask", mask_filler(model, preprocessor), [TEXT], uses)]
    if task == "question_answering":
        return [Endpoint("answer", answerer(model, preprocessor), [QUESTION, CONTEXT], uses)]
    if task == "backbone" and "padding_mask" in model.input and \
            "sequence_output" in model.output:
        def embed(text):
            inputs = preprocessor(text)
            outputs = model(inputs, training=False)
            return {"embedding": tf.math.l2_normalize(pool(outputs, inputs, "mean"), axis=-1)}

        return [Endpoint("embed", embed, [TEXT], uses)]
    return []


def word_tagger(model, preprocessor):
    """text [batch] -> a tag per whitespace-separated word, from its first word piece.

    Outputs, padded to the longest sentence's word count: `words` (string), `start` and `end`
    (byte offsets in the text, end exclusive), `tag_id` (int32; -1 for padding and for words
    cut off by `sequence_length`), `tag_name` ("" there), `score` (the tag's probability).
    """
    names = tf.constant(["", *label_names(model)])  # index 0 for "no tag"
    splitter = tf_text.WhitespaceTokenizer()
    length = preprocessor.sequence_length

    def tag(text):
        words, starts, ends = splitter.tokenize_with_offsets(text)
        inputs = preprocessor(words)
        logits = model(inputs, training=False)
        # The first piece of each word: [CLS], then the pieces of the words before it.
        counts = preprocessor.tokenizer(words.flat_values).row_lengths()
        before = tf.cumsum(counts, exclusive=True)
        sentence_start = tf.gather(tf.concat([before, [tf.reduce_sum(counts)]], 0),
                                   words.row_starts())
        first = 1 + before - tf.gather(sentence_start, words.value_rowids())
        kept = (counts > 0) & (first < length - 1)  # the last position is [SEP]
        index = tf.stack([words.value_rowids(), tf.minimum(first, length - 1)], axis=1)
        probabilities = tf.nn.softmax(tf.gather_nd(logits, index), axis=-1)
        tag_id = tf.where(kept, tf.argmax(probabilities, axis=-1, output_type=tf.int32), -1)
        score = tf.where(kept, tf.reduce_max(probabilities, axis=-1), 0.0)

        def dense(values, default):
            return words.with_flat_values(values).to_tensor(default_value=default)

        return {"words": words.to_tensor(default_value=""),
                "start": dense(starts.flat_values, -1), "end": dense(ends.flat_values, -1),
                "tag_id": dense(tag_id, -1),
                "tag_name": dense(tf.gather(names, tag_id + 1), ""),
                "score": dense(score, 0.0)}

    return tag


def mask_filler(model, preprocessor, top_k=TOP_K):
    """text [batch] with the tokenizer's mask token (`[MASK]`) -> the top-k tokens for each.

    The text is split at the mask token, the parts tokenized and joined with the mask id, and
    packed as `[CLS] ... [SEP]` (truncated). Outputs per mask slot (`max_predictions` of the
    preprocessor, else 20% of the length): `token_ids`, `tokens`, `scores` (probabilities)
    `[batch, slots, k]`, `mask_positions` `[batch, slots]`, and `num_masks` `[batch]`, the
    masks found (slots past it are padding: position 0).
    """
    tokenizer = preprocessor.tokenizer
    mask_id, start_id, end_id = tokenizer.mask_id, tokenizer.start_id, tokenizer.end_id
    if None in (mask_id, start_id, end_id):
        raise ValueError("fill_mask needs a tokenizer with mask, start and end tokens "
                         "([MASK], [CLS], [SEP]).")
    mask_token = tokenizer.id_to_token(mask_id)
    length = preprocessor.sequence_length
    slots = getattr(preprocessor, "max_predictions", None) or max(1, length // 5)
    vocabulary = tf.constant(tokenizer.get_vocabulary())
    k = min(top_k, tokenizer.vocabulary_size())
    pad_id = preprocessor.pad_id

    def fill(text):
        parts = tf.strings.split(text, mask_token)  # [batch, parts]
        pieces = tf.cast(tokenizer(parts.flat_values), tf.int32)
        masks = tf.fill(tf.stack([pieces.nrows(), 1]), tf.constant(mask_id, tf.int32))
        pieces = tf.concat([pieces, masks], axis=1)  # each part then a mask ...
        ids = tf.RaggedTensor.from_row_splits(pieces, parts.row_splits).merge_dims(1, 2)
        ids = ids[:, :-1]  # ... except the last part
        token_ids, segment_ids, padding_mask = pack([ids], length, start_id, end_id, pad_id)
        found = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(length), tf.shape(token_ids)), token_ids == mask_id)
        num_masks = tf.cast(tf.minimum(found.row_lengths(), slots), tf.int32)
        positions = found[:, :slots].to_tensor(default_value=0, shape=[None, slots])
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
                  "padding_mask": padding_mask, "mask_positions": positions}
        probabilities = tf.nn.softmax(model(inputs, training=False), axis=-1)
        scores, top = tf.math.top_k(probabilities, k=k)
        return {"token_ids": top, "tokens": tf.gather(vocabulary, top), "scores": scores,
                "mask_positions": positions, "num_masks": num_masks}

    return fill


def answerer(model, preprocessor):
    """(question [batch], context [batch]) -> the best answer of each pair: `answer` (the
    context's bytes, "" for none), `start` / `end` (byte offsets, -1 for none), `score`
    (`zoo.preprocessing.best_answers`). Long contexts are read in windows; pairs of
    different counts are an InvalidArgument error."""

    def answer(question, context):
        inputs, windows = preprocessor.windows((question, context))
        logits = model(inputs, training=False)
        return best_answers(logits, windows, model.max_answer_length, model.allow_no_answer)

    return answer
