"""ViT checkpoints in Hugging Face's layout: `ViTModel` and `ViTForImageClassification`.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see `zoo/checkpoints/__init__.py`).
Hugging Face takes images channels first (`pixel_values` `[batch, channels, height, width]`),
the zoo channels last: transpose them with `images = pixel_values.transpose(0, 2, 3, 1)`.

`ViTForImageClassification` has no pooler and classifies the normalized class token; a zoo
classifier that pools through the pooler (`pooling="pooled"`, what loading a `ViTModel` with
`task="classifier"` builds) has no such layout and is refused by `save_pretrained`: build it
with `pooling="first_token"` to save it.
"""

from zoo.checkpoints.tensors import (
    CheckpointError,
    architecture,
    checkpoint_task,
    conv,
    dense_layer,
    encoder_layer_tensors,
    label_maps,
    norm,
    num_labels,
    same,
    vector,
)

FAMILY_NAME = "vit"
BASE_SIZE = "b16"
PREFIX = "vit."  # the backbone's tensors inside a task checkpoint
# architecture -> (zoo task, has a pooler)
ARCHITECTURES = {
    "ViTModel": (None, True),
    "ViTForImageClassification": ("classifier", False),
}
TASK_ARCHITECTURES = {task: name for name, (task, _) in ARCHITECTURES.items()}


def from_hf_config(hf):
    _, (task, has_pooler) = architecture(hf, ARCHITECTURES, "ViT", "ViTModel")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"ViT hidden_act {hf['hidden_act']!r} is not supported; the zoo's ViT uses 'gelu'."
        )
    if not hf.get("qkv_bias", True):
        raise CheckpointError("ViT qkv_bias=False is not supported: the zoo's ViT has biases "
                              "in its query, key and value projections.")
    hidden = hf.get("hidden_size", 768)
    if has_pooler:
        pooler = (hf.get("pooler_output_size") or hidden, hf.get("pooler_act", "tanh"))
        if pooler != (hidden, "tanh"):
            raise CheckpointError(
                f"ViT pooler_output_size {pooler[0]} and pooler_act {pooler[1]!r} are not "
                f"supported: the zoo's pooler is tanh of hidden_size ({hidden}) units."
            )
    height, width = pair(hf.get("image_size", 224), "image_size")
    patch = pair(hf.get("patch_size", 16), "patch_size")
    if patch[0] != patch[1]:
        raise CheckpointError(f"ViT patch_size {list(patch)} is not supported: the zoo's "
                              "patches are square.")
    fields = {
        "image_shape": (height, width, hf.get("num_channels", 3)),
        "patch_size": patch[0],
        "position_image_size": (height, width),
        "num_layers": hf.get("num_hidden_layers", 12),
        "num_heads": hf.get("num_attention_heads", 12),
        "hidden_dim": hidden,
        "intermediate_dim": hf.get("intermediate_size", 3072),
        "dropout": hf.get("hidden_dropout_prob", 0.0),
        "attention_dropout": hf.get("attention_probs_dropout_prob", 0.0),
        "layer_norm_epsilon": hf.get("layer_norm_eps", 1e-12),
        "use_pooler": has_pooler,
        "use_class_token": True,
    }
    task_arguments = {}
    if task == "classifier":
        task_arguments["num_classes"] = num_labels(hf)
    return fields, task, task_arguments


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    task = checkpoint_task(model, TASK_ARCHITECTURES, "ViT")
    if not c.use_class_token:
        raise CheckpointError("A ViT without a class token (use_class_token=False) has no "
                              "Hugging Face layout.")
    height, width = c.table_image_size
    config = {
        "architectures": [TASK_ARCHITECTURES[task]],
        "model_type": "vit",
        "hidden_size": c.hidden_dim,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_dim,
        "hidden_act": "gelu",
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "layer_norm_eps": c.layer_norm_epsilon,
        # The size the position table is for; other sizes take `interpolate_pos_encoding`.
        "image_size": height if height == width else [height, width],
        "patch_size": c.patch_size,
        "num_channels": c.image_shape[2],
        "qkv_bias": True,
        "encoder_stride": c.patch_size,
        "initializer_range": 0.02,
    }
    if task is None:
        config.update(pooler_output_size=c.hidden_dim, pooler_act="tanh")
    else:
        config.update(label_maps(model.num_classes))
    return config


def backbone_tensors(backbone, prefix=""):
    embedding = backbone.patch_embedding
    table = embedding.position_embeddings
    specs = [
        same(f"{prefix}embeddings.cls_token", embedding.class_token),
        same(f"{prefix}embeddings.position_embeddings", table, hf_shape=(1, *table.shape)),
        conv(f"{prefix}embeddings.patch_embeddings.projection.weight",
             embedding.projection.kernel),
        vector(f"{prefix}embeddings.patch_embeddings.projection.bias", embedding.projection.bias),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        specs += encoder_layer_tensors(f"{prefix}encoder.layer.{i}", block, "attention",
                                       "layernorm_before", "layernorm_after")
    specs += norm(f"{prefix}layernorm", backbone.final_norm)
    # A task checkpoint (`vit.` prefix) has no pooler: ViTForImageClassification drops it.
    if backbone.pooler is not None and not prefix:
        specs += dense_layer(f"{prefix}pooler.dense", backbone.pooler)
    return specs


def head_tensors(model):
    checkpoint_task(model, TASK_ARCHITECTURES, "ViT")
    if model.pooling != "first_token":
        raise CheckpointError(
            f"This ViT classifier pools with {model.pooling!r}, but Hugging Face's "
            "ViTForImageClassification classifies the normalized class token. Build it with "
            "pooling='first_token' (and use_pooler=False) to read or write that layout."
        )
    return dense_layer("classifier", model.get_layer("logits"))


def pair(value, name):
    """`(height, width)` of an int or a two-item list."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return tuple(value)
    raise CheckpointError(f"ViT {name} {value!r} is neither an int nor [height, width].")
