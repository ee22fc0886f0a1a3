"""Which feature of a dataset feeds which input of a task: `FEATURES`, `roles_of(name)` and
`selector(preprocessor, spec, name, features)`, the function `training.pipelines` maps over a
dataset's elements to get a preprocessor's `(x, y)`.

A task's preprocessor reads roles (`roles_for`): a classifier "text" (and "text_pair",
"label"), a seq2seq model "source" and "target", question answering "question", "context"
(and "answers"), an image classifier "image" (and "label"). `FEATURES` names the feature of
each role for the datasets the project knows; for another dataset the names in `GUESSES` are
tried, and `features={role: name}` overrides either.

Example:

>>> import tensorflow as tf, zoo
>>> from zoo.preprocessing import preprocessor_for
>>> model = zoo.build("vit", task="classifier", num_classes=10)
>>> spec = {"image": tf.TensorSpec([28, 28, 1], tf.uint8), "label": tf.TensorSpec([], tf.int64)}
>>> pick = selector(preprocessor_for(model), spec, "fashion_mnist_local", None)
>>> x, y = pick({"image": tf.zeros([28, 28, 1], tf.uint8), "label": tf.constant(3, tf.int64)})
>>> tuple(x.shape), int(y)
((28, 28, 1), 3)
"""

import tensorflow as tf

from zoo.preprocessing import (
    CausalLMPreprocessor,
    ImageClassifierPreprocessor,
    MaskedLMPreprocessor,
    QuestionAnsweringPreprocessor,
    Seq2SeqLMPreprocessor,
)

# Which feature of a dataset plays which role. Roles: "text" (a string, or the words of a
# sentence for token classification), "text_pair" (a second string, for pairs), "label" (a
# class, or a label per word), "image" (pixels or encoded bytes), "source" and "target"
# (translation, and summarization: the document and its summary), "question", "context" and
# "answers" (SQuAD's `{"text", "answer_start"}`: the first answer is trained on). A name
# matches exactly or by its part before "/".
FEATURES = {
    "fortunes": {"text": "text", "label": "label"},
    "imdb_reviews": {"text": "text", "label": "label"},
    "glue/sst2": {"text": "sentence", "label": "label"},
    "botchan": {"text": "text"},
    "tiny_shakespeare": {"text": "text"},
    "conll_sample": {"text": "tokens", "label": "ner"},
    "conll2003": {"text": "tokens", "label": "ner"},
    "squad": {"question": "question", "context": "context", "answers": "answers"},
    "squad_sample": {"question": "question", "context": "context", "answers": "answers"},
    "fashion_mnist_local": {"image": "image", "label": "label"},
    "fashion_mnist": {"image": "image", "label": "label"},
    "mnist": {"image": "image", "label": "label"},
    "cifar10": {"image": "image", "label": "label"},
    "digits": {"image": "image", "label": "label"},
    "gettext_translations/de": {"source": "en", "target": "de"},
    "gettext_translations/es": {"source": "en", "target": "es"},
    "ted_hrlr_translate/pt_to_en": {"source": "pt", "target": "en"},
    "wmt14_translate/de-en": {"source": "de", "target": "en"},
    "debian_descriptions": {"source": "document", "target": "summary"},
    "xsum": {"source": "document", "target": "summary"},
    "cnn_dailymail": {"source": "article", "target": "highlights"},
}
# The source -> target datasets whose target summarizes the source: `kt evaluate` scores them
# with ROUGE (`training.metrics.rouge`) where it scores translations with BLEU.
SUMMARIZATION = ("debian_descriptions", "xsum", "cnn_dailymail")
# Feature names tried, in order, for a dataset not in FEATURES.
GUESSES = {"text": ("text", "sentence", "tokens", "content"), "label": ("label", "ner", "labels"),
           "image": ("image",), "question": ("question",), "context": ("context",),
           "answers": ("answers",)}


def roles_of(name):
    """`{role: feature name}` of a dataset in `FEATURES` (a config such as
    "gettext_translations/de" falls back to its dataset's entry), or None when it has none."""
    return FEATURES.get(name) or FEATURES.get(name.split("/")[0])


def is_summarization(name):
    """Whether dataset `name` (or its dataset, for "name/config") is a summarization one."""
    return name in SUMMARIZATION or name.split("/")[0] in SUMMARIZATION


def roles_for(preprocessor):
    """(required roles, optional roles) of a preprocessor's inputs."""
    if isinstance(preprocessor, Seq2SeqLMPreprocessor):
        return ("source", "target"), ()
    if isinstance(preprocessor, (MaskedLMPreprocessor, CausalLMPreprocessor)):
        return ("text",), ()
    if isinstance(preprocessor, ImageClassifierPreprocessor):
        return ("image",), ("label",)
    if isinstance(preprocessor, QuestionAnsweringPreprocessor):
        return ("question", "context"), ("answers",)
    return ("text",), ("text_pair", "label")


def selector(preprocessor, spec, name, features):
    """A function from a dataset element to the preprocessor's `(x, y)`."""
    required, optional = roles_for(preprocessor)
    if not isinstance(spec, dict):  # a tuple (input, label) / (source, target), or one tensor
        count = len(spec) if isinstance(spec, tuple) else 1
        if count < len(required):
            raise ValueError(f"{type(preprocessor).__name__} needs {required}, but the dataset "
                             f"gives {count} tensor(s) per element.")

        def from_tuple(element):
            parts = element if isinstance(element, tuple) else (element,)
            if required == ("source", "target"):
                return parts[:2], None
            return parts[0], parts[1] if len(parts) > 1 and "label" in optional else None

        return from_tuple

    table = {}
    if name is not None:
        table = roles_of(name) or {}
    chosen = {**table, **(features or {})}
    for role in required + optional:
        if role not in chosen and role in GUESSES and (name is None or not table):
            found = [f for f in GUESSES[role] if f in spec]
            if found:
                chosen[role] = found[0]
    missing = [role for role in required if role not in chosen]
    unknown = {role: f for role, f in chosen.items() if f not in spec
               and role in required + optional}
    if missing or unknown:
        problem = (f"cannot tell which feature is the {', '.join(missing)}" if missing else
                   f"features {unknown} are not in the dataset")
        raise ValueError(
            f"{type(preprocessor).__name__}: {problem}. The dataset's features: "
            f"{sorted(spec)}. Pass features={{{', '.join(repr(r) + ': ...' for r in required)}}}"
            f" (roles: {', '.join(required + optional)})."
        )
    keys = {role: chosen.get(role) for role in required + optional}

    def from_dict(element):
        if required == ("source", "target"):
            return (element[keys["source"]], element[keys["target"]]), None
        if required == ("question", "context"):
            answers = element[keys["answers"]] if keys.get("answers") else None
            return (element[keys["question"]], element[keys["context"]]), first_answer(answers)
        x = element[keys[required[0]]]
        if keys.get("text_pair"):
            x = (x, element[keys["text_pair"]])
        label = keys.get("label")
        return x, element[label] if label else None

    return from_dict


def first_answer(answers):
    """SQuAD's answers of one question (`{"text": [n], "answer_start": [n]}`) -> the first,
    as `QuestionAnsweringPreprocessor` takes it (`answer_start` -1 and "" when n is 0)."""
    if answers is None:
        return None
    found = tf.size(answers["text"]) > 0
    return {"answer_start": tf.cond(found, lambda: tf.cast(answers["answer_start"][0], tf.int32),
                                    lambda: tf.constant(-1)),
            "answer_text": tf.cond(found, lambda: answers["text"][0], lambda: tf.constant(""))}
