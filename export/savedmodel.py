"""`saved_model(model, base_dir)`: a TF Serving version folder with named signatures.

The folder is `<base_dir>/<name>/<version>/` (the next version unless one is given), written
to a temporary sibling and renamed into place (`export.layout`), with the signatures of
`export.signatures` (preprocessing inside the graph, so TF Serving takes raw text or image
bytes), TF Serving's warmup requests (`assets.extra/`), and `<base_dir>/models.config`.

The SavedModel needs TensorFlow and tf-text only: load it with `import tensorflow_text`
(which registers the tokenizer ops) and `tf.saved_model.load(path)`.

A LoRA model is exported with its updates merged into the kernels (`zoo.lora.merged`: no
LoRA ops in the graph); a Keras-quantized model (`model.quantize("int8")`) keeps its integer
weights and computes as the Keras model does.

Example:

>>> import tempfile, zoo
>>> model = zoo.build("vit", task="classifier", num_classes=3)
>>> path = saved_model(model, tempfile.mkdtemp(), name="vit")
>>> path.parent.name, path.name
('vit', '1')
>>> sorted(signatures(path))
['pixels', 'serving_default']
"""

from pathlib import Path

import keras

from export import generation, layout, warmup
from export.archive import write_archive
from export.signatures import endpoints, task_of
from export.warmup import signatures
from zoo.lora import merged_if_lora


def saved_model(model, base_dir, name=None, version=None, overwrite=False):
    """Export `model` for TF Serving; returns the version folder's path.

    Args:
        model: a zoo model, with `model.preprocessor` for raw-text signatures.
        base_dir: TF Serving's model base folder; `models.config` is written there.
        name: the model's folder; `<family>_<task>` (e.g. `bert_text_classifier`) when None.
        version: a positive int; one more than the highest existing version when None.
        overwrite: replace an existing version folder (else FileExistsError).
    """
    name = layout.check_name(name or default_name(model))
    model = merged_if_lora(model)
    model_dir = Path(base_dir) / name
    if version is None:
        version = layout.next_version(model_dir)

    def write(folder):
        write_archive(build_archive(model), folder)
        warmup.write_warmup(folder, name)

    path = layout.write_version(model_dir, version, write, overwrite=overwrite)
    warmup.write_models_config(base_dir)
    return path


def build_archive(model):
    """The `keras.export.ExportArchive` of `model`: its signatures, with every layer they use
    tracked (a preprocessor's lookup tables must be, or the export fails with "untracked
    resource"); causal and seq2seq LMs with a preprocessor also get `export.generation`'s
    generate signature."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    tracked = {id(model)}
    for endpoint in endpoints(model):
        for layer in endpoint.uses:
            if id(layer) not in tracked:
                archive.track(layer)
                tracked.add(id(layer))
        archive.add_endpoint(endpoint.name, endpoint.fn, input_signature=endpoint.input_signature)
    preprocessor = getattr(model, "preprocessor", None)
    if task_of(model) in ("causal_lm", "seq2seq_lm") and preprocessor is not None:
        if id(preprocessor) not in tracked:
            archive.track(preprocessor)
        generation.add_generate_signature(archive, model)
    return archive


def default_name(model):
    """`<family>_<task>`, e.g. `bert_text_classifier`, `vit_image_classifier`."""
    family = getattr(model, "backbone", model).family_name
    task = task_of(model)
    return family if task == "backbone" else f"{family}_{task}"


__all__ = ["saved_model", "signatures", "build_archive", "default_name"]
