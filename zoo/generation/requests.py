"""Prompts in, answers out: what `generate` and `stream` take and give back.

`causal_request(model, inputs)` / `seq2seq_request(model, inputs)` turn the prompts (text
through the attached preprocessor, chat messages through its chat template, lists of ids, or a
dict of padded ids and mask) into a `Request`: lists of ids, the model's other inputs, and
the form the answer goes back in; `respond` gives the new tokens back in that form
(`detokenize` for text).

>>> import zoo
>>> model = zoo.build("gpt", size="tiny", task="causal_lm")
>>> request = causal_request(model, [[5, 9, 2], [7]])
>>> request.rows, request.kind
([[5, 9, 2], [7]], 'lists')
"""

import dataclasses

import numpy as np
from keras import ops

from zoo.preprocessing import chat_template


def _as_strings(inputs):
    """A list of `str` and whether it was one string, or None when `inputs` are not text."""
    if isinstance(inputs, (str, bytes)):
        return [_text(inputs)], True
    if hasattr(inputs, "dtype") and "string" in str(inputs.dtype) and hasattr(inputs, "numpy"):
        inputs = inputs.numpy()
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "USO" and inputs.ndim <= 1:
        if inputs.ndim == 0:
            return [_text(inputs.item())], True
        inputs = inputs.tolist()
    if isinstance(inputs, (list, tuple)) and inputs and all(
            isinstance(x, (str, bytes)) for x in inputs):
        return [_text(x) for x in inputs], False
    return None


def _text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _rows(token_ids, padding_mask=None):
    """Token ids (lists, a ragged tensor, or dense ids + mask) as a list of lists."""
    if hasattr(token_ids, "to_list"):  # tf.RaggedTensor
        return token_ids.to_list()
    if padding_mask is None:
        rows = [list(np.asarray(row).reshape(-1)) for row in token_ids]
    else:
        ids, mask = np.asarray(token_ids), np.asarray(padding_mask).astype(bool)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ValueError(f"token_ids {ids.shape} and padding_mask {mask.shape} must be the "
                             "same [batch, length] shape.")
        lengths = mask.sum(axis=1)
        if not all(mask[i, :n].all() for i, n in enumerate(lengths)):
            raise ValueError("padding_mask must be ones then zeros in each row (right "
                             "padding): generation continues after the last real token.")
        rows = [ids[i, :n].tolist() for i, n in enumerate(lengths)]
    return [[int(t) for t in row] for row in rows]


@dataclasses.dataclass
class Request:
    """Prompts as lists of ids, the model's other inputs, and how to give the answer back."""

    rows: list
    extras: dict
    kind: str  # "strings", "lists" or "dict"
    scalar: bool = False
    chat: bool = False  # rendered from chat messages: stop at the template's end of turn


def _preprocessor(model):
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        raise ValueError(
            f"Text prompts need a preprocessor with a tokenizer, and this "
            f"{type(model).__name__} has none: pass token ids, or attach one with "
            "zoo.preprocessing.preprocessor_for(model, tokenizer)."
        )
    return preprocessor


def causal_request(model, inputs):
    conversations = chat_template.as_conversations(inputs)
    if conversations is not None:
        conversations, scalar = conversations
        tokenizer = _preprocessor(model).tokenizer
        # The template writes the start token itself when the model wants one.
        strings = chat_template.render_conversations(tokenizer, conversations)
        rows = [[int(t) for t in row] for row in tokenizer(strings).to_list()]
        return Request(rows, {}, "strings", scalar, chat=True)
    texts = _as_strings(inputs)
    if texts is not None:
        strings, scalar = texts
        preprocessor = _preprocessor(model)
        rows = preprocessor.tokenizer(strings).to_list()
        start_id = getattr(preprocessor, "start_id", None)
        if start_id is not None:
            rows = [[start_id, *row] for row in rows]
        return Request([[int(t) for t in r] for r in rows], {}, "strings", scalar)
    if isinstance(inputs, dict):
        if "token_ids" not in inputs:
            raise ValueError(f"A dict of inputs needs 'token_ids' (and 'padding_mask'); got "
                             f"{sorted(inputs)}.")
        mask = inputs.get("padding_mask")
        if mask is None:
            mask = np.ones(np.shape(inputs["token_ids"]), "int32")
        return Request(_rows(inputs["token_ids"], mask), {}, "dict")
    return Request(_rows(inputs), {}, "lists")


def seq2seq_request(model, inputs):
    texts = _as_strings(inputs)
    if texts is not None:
        strings, scalar = texts
        x = _preprocessor(model)(strings)
        extras = {k: np.asarray(x[k], "int32")
                  for k in ("encoder_token_ids", "encoder_padding_mask")}
        return Request([[]] * len(strings), extras, "strings", scalar)
    if isinstance(inputs, dict):
        if "encoder_token_ids" not in inputs:
            raise ValueError("A dict of inputs to a Seq2SeqLM needs 'encoder_token_ids' (and "
                             f"'encoder_padding_mask'); got {sorted(inputs)}.")
        ids = np.asarray(inputs["encoder_token_ids"], "int32")
        mask = inputs.get("encoder_padding_mask")
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, "int32")
        kind = "dict"
    else:
        rows = _rows(inputs)
        width = max([len(r) for r in rows] + [1])
        ids = np.zeros((len(rows), width), "int32")
        mask = np.zeros((len(rows), width), "int32")
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        kind = "lists"
    if len(ids) and (mask.sum(axis=1) == 0).any():
        empty = int(np.flatnonzero(mask.sum(axis=1) == 0)[0])
        raise ValueError(f"Prompt {empty} is empty: give the encoder at least one token.")
    extras = {"encoder_token_ids": ids, "encoder_padding_mask": mask}
    return Request([[]] * len(ids), extras, kind)


def respond(model, request, token_ids, mask, stop_token_ids):
    """The new tokens in the form the prompts came in (see `generate`'s Returns)."""
    if request.kind == "dict":
        return {"token_ids": token_ids, "padding_mask": mask}
    rows = [row[: int(m.sum())].tolist() for row, m in zip(token_ids, mask, strict=True)]
    if request.kind == "lists":
        return rows
    texts = detokenize(model.preprocessor.tokenizer,
                       [[t for t in row if t not in stop_token_ids] for row in rows])
    return texts[0] if request.scalar else texts


def detokenize(tokenizer, rows):
    """Lists of ids -> a list of `str`."""
    if not any(rows):  # a ragged tensor of empty rows has no inner dtype to infer
        return ["" for _ in rows]
    strings = tokenizer.detokenize(rows)
    return [_text(s) for s in np.asarray(ops.convert_to_numpy(strings)).reshape(-1)]
