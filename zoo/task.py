"""The base of every task model: a backbone plus a head, with compile defaults."""

import math

import keras
import numpy as np

from zoo import quantization
from zoo.validation import ValidatedCall, check_inputs


class Task(ValidatedCall, keras.Model):
    """A functional `keras.Model` made of `backbone` and a head.

    Subclasses set `task_name` (as in `zoo.build(name, task=...)`), build the graph in
    `__init__(backbone, ...)`, call `super().__init__(inputs=..., outputs=...,
    backbone=backbone)`, and store their own arguments for `get_config`. `preprocessor`
    (strings to inputs, a `zoo.preprocessing` layer, from `preprocessor_for`) is attached by
    `zoo.from_pretrained` and by the training code; it is None otherwise. `label_names`
    (a name per class, for classifiers trained on a labelled dataset) is None when unknown.

    The preprocessor is part of the model's config, so `model.save("m.keras")` and
    `keras.models.load_model` keep it (the tokenizers keep their vocabulary in their config).

    `compile()` with no arguments picks the task's loss and metrics, AdamW, and
    `jit_compile=True` (Keras' "auto" turns XLA off on CPU machines).

    Calls and `predict` with concrete values reject ids outside the vocabulary, segments or
    positions first (`zoo.validation`): a bad id otherwise reads some other row.
    """

    task_name = None

    def __init__(self, *, inputs, outputs, backbone, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.preprocessor = None
        self.label_names = None

    @property
    def family_name(self):
        """The family of the backbone (`"bert"`, `"gpt"`, ...)."""
        return self.backbone.family_name

    def default_loss(self):
        # Averaged over the sample weights, so padding (weight 0) does not dilute the loss.
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def compile(self, optimizer="auto", loss="auto", metrics="auto", learning_rate=1e-3,
                jit_compile=True, **kwargs):
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=0.01)
        if loss == "auto":
            loss = self.default_loss()
        if metrics == "auto":  # weighted, so padding with sample_weight 0 is not counted
            metrics = None
            kwargs.setdefault("weighted_metrics", self.default_metrics())
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        jit_compile=jit_compile, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict`, with in-memory arrays sliced in Python instead of tf.data.

        Keras feeds numpy arrays through a `tf.data` pipeline that it builds (and traces)
        anew on every call: about 80 ms before the first batch runs, forty times the model's
        own time at batch 1 (BENCHMARKS.md). Numpy inputs (an array, or a dict, list or tuple
        of arrays) without `steps` or `callbacks` go batch by batch through the same compiled
        predict function instead; anything else goes to Keras unchanged.
        """
        check_inputs(self, x)
        leaves = keras.tree.flatten(x)
        in_memory = leaves and all(
            isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biuf" and leaf.ndim
            for leaf in leaves)
        if not in_memory or steps is not None or callbacks:
            return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                                   callbacks=callbacks)
        rows = len(leaves[0])
        if any(len(leaf) != rows for leaf in leaves):
            raise ValueError(f"predict got inputs with different numbers of rows: "
                             f"{sorted({len(leaf) for leaf in leaves})}.")
        batch_size = batch_size or 32
        progress = keras.utils.Progbar(math.ceil(rows / batch_size),
                                       verbose=1 if verbose == "auto" else verbose)
        outputs = []
        for step, start in enumerate(range(0, rows, batch_size)):
            rows_here = slice(start, start + batch_size)
            batch = keras.tree.map_structure(lambda a, rows_here=rows_here: a[rows_here], x)
            outputs.append(self.predict_on_batch(batch))
            if verbose:
                progress.update(step + 1)
        return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outputs)

    def compile_from_config(self, config):
        # `.keras` loading calls this; the file holds the full compile arguments, so the
        # defaults of `compile()` above have nothing to add.
        config = keras.saving.deserialize_keras_object(config)
        keras.Model.compile(self, **config)
        if self.built:
            self.optimizer.build(self.trainable_variables)  # its state is loaded next

    def quantize(self, mode=None, config=None, filters=None):
        """Quantize the weights in place, the head's too: see `zoo.quantization.quantize`."""
        quantization.quantize(self, mode, config, filters)

    def task_config(self):
        """The head's own arguments; subclasses return them."""
        return {}

    def get_config(self):
        backbone = keras.layers.serialize(self.backbone)
        # The head's layers take the backbone's policy: it names every quantized layer.
        policy = quantization.saved_policy(self, self.backbone.build_dtype)
        backbone["config"]["dtype"] = keras.dtype_policies.serialize(policy)
        config = {
            "backbone": backbone,
            "name": self.name,
            "trainable": self.trainable,
            **self.task_config(),
        }
        if self.preprocessor is not None:
            config["preprocessor"] = keras.layers.serialize(self.preprocessor)
        if self.label_names is not None:
            config["label_names"] = [str(name) for name in self.label_names]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        preprocessor = config.pop("preprocessor", None)
        label_names = config.pop("label_names", None)
        model = cls(**config)
        model.label_names = label_names
        if preprocessor is not None:
            from zoo import preprocessing  # needs TensorFlow: imported when a model has one

            preprocessing.register_all()
            model.preprocessor = keras.layers.deserialize(preprocessor)
        return model


class GenerativeTask(Task):
    """A task that continues text: `CausalLM` (GPT) and `Seq2SeqLM` (T5). Subclasses provide
    `make_cache` and `call_with_cache`; `generate` drives them."""

    def generate(self, inputs, max_new_tokens, sampler="greedy", **kwargs):
        """Continue prompts: strings in and out with a preprocessor, else token ids.

        A thin call of `zoo.generation.generate` (samplers, beam search, stop tokens, seed:
        see there), compiled once per shape.

        >>> model.generate([[5, 9, 2]], max_new_tokens=2)  # doctest: +SKIP
        [[17, 17]]
        """
        from zoo import generation

        return generation.generate(self, inputs, max_new_tokens, sampler, **kwargs)
