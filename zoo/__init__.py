"""The model zoo: BART, BERT, GPT (GPT-2 and Llama style), T5 and ViT from `keras_transformers`.

Example:

>>> import zoo
>>> zoo.names()
['bart', 'bert', 'gpt', 't5', 'transformer', 'vit']
>>> model = zoo.build("bert", size="tiny", task="classifier", num_classes=3)
>>> zoo.count_params("bert", "base")                    # no weights allocated
109482240
"""

from zoo.attention_maps import attention_maps
from zoo.checkpoints import CheckpointError, save_pretrained
from zoo.pretrained import from_pretrained
from zoo.registry import (
    build,
    config,
    count_params,
    import_all,
    names,
    sizes,
    task_arguments,
    tasks,
)

import_all()  # registers every model class, so `keras.models.load_model` finds them

__all__ = [
    "CheckpointError",
    "attention_maps",
    "build",
    "config",
    "count_params",
    "from_pretrained",
    "names",
    "save_pretrained",
    "sizes",
    "task_arguments",
    "tasks",
]
