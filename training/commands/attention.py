"""`kt attention`: pictures of a model's attention on one text or one image.

    kt attention runs/bert --text "The cat sat on the mat." --out attention/
    kt attention runs/vit --image shoe.png --layer -1
    kt attention runs/t5 --text "translate: a house" --target "ein Haus"
    kt attention runs/qa --text "Who wrote it?" --context "Ada wrote the first program."

For each attention kind (`encoder`, `decoder`, `cross`; see `zoo.attention_maps`) and each
layer (or only `--layer N`), it writes to `--out` (figures by `zoo.attention_plots`):

    {kind}_layer_{N}_heads.png   one panel per head, tokens on the axes
    {kind}_layer_{N}.png         the heads' mean: the matrix with a colorbar, and the mean
                                 attention each position receives, as bars
    rollout.png                  (ViT) the image and the class token's attention rollout
                                 through the layers (up to `--layer`)

Text goes through the model's own preprocessor (saved in run folders and `.keras` files; for
a Hugging Face folder, made from the tokenizer files beside the weights), cut to its real
tokens. Images go through the model's preprocessor, or are resized to its `image_shape` and
scaled to [0, 1] when it has none.
"""

import re
from pathlib import Path

HELP = "plot a model's attention maps on a text or an image (PNGs per layer)"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL_OR_RUN_OR_PATH",
                        help="a run folder, a .keras file, a Hugging Face folder, a .gguf "
                             "file or a Hub name (org/name, hf://org/name[@rev][/f.gguf])")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to look at (text models)")
    source.add_argument("--image", metavar="FILE", help="the image to look at (ViT)")
    parser.add_argument("--target", help="T5: the decoder's text (teacher forced); without it "
                        "the decoder sees its start token only")
    parser.add_argument("--context", help="question answering: the context; --text is the "
                        "question (the first window of a long context is shown)")
    parser.add_argument("--layer", type=int, help="only this layer (0-based; -1 is the last)")
    parser.add_argument("--kind", choices=("encoder", "decoder", "cross"),
                        help="only this kind of attention")
    parser.add_argument("--out", default="attention", help="folder for the PNGs "
                        "(default: ./attention)")


def run(args):
    from training import checks, runs
    from zoo.attention_maps import attention_maps, check_layer, layer_count
    from zoo.attention_plots import DPI

    checks.writable_folder("--out", args.out)
    checks.existing("--image", args.image)
    model = runs.load_model(args.model)
    if args.image is not None:
        inputs, labels = image_inputs(model, args.image)
    else:
        inputs, labels = text_inputs(model, args.text, args.target, args.model, args.context)
    maps = attention_maps(model, inputs)

    kinds = [args.kind] if args.kind else list(maps)
    selected = {}
    for kind in kinds:
        count = layer_count(maps, kind)
        if args.layer is None:
            selected[kind] = range(count)
            continue
        try:
            selected[kind] = [check_layer(maps, kind, args.layer)]
        except ValueError as error:
            hint = f" Pick the stack with --kind ({', '.join(maps)})." if len(kinds) > 1 else ""
            raise ValueError(f"{error}{hint}") from None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, layers in selected.items():
        written += plot_kind(maps[kind], kind, layers, labels, out)
    if args.image is not None and "encoder" in selected:
        last = max(selected["encoder"])
        written.append(save(rollout_figure(model, inputs, maps["encoder"][:last + 1], last),
                            out / "rollout.png", DPI))
    for path in written:
        print(path)
    return 0


def plot_kind(layers_maps, kind, layers, labels, out):
    """Write the two PNGs of each of `layers`; returns their paths."""
    from zoo.attention_plots import DPI, plot_attention, plot_heads

    queries, keys = query_and_key_labels(kind, labels)
    written = []
    for layer in layers:
        scores = layers_maps[layer][0]                                  # [heads, q, k]
        title = f"{kind} attention, layer {layer}"
        written.append(save(plot_heads(scores, queries, keys, title=title),
                            out / f"{kind}_layer_{layer}_heads.png", DPI))
        written.append(save(plot_attention(scores.mean(0), queries, keys,
                                           title=f"{title}, mean of {len(scores)} heads"),
                            out / f"{kind}_layer_{layer}.png", DPI))
    return written


def query_and_key_labels(kind, labels):
    """Tokens of the queries and keys: cross attention reads the source from the target."""
    if kind == "cross":
        return labels["decoder"], labels["encoder"]
    return labels[kind], labels[kind]


def save(figure, path, dpi):
    figure.savefig(path, dpi=dpi)
    return path


def text_inputs(model, text, target, source, context=None):
    """The model's inputs for one text (a question and its `context` for question
    answering), cut to its real tokens, and the tokens by stack."""
    from zoo.vit import ViTBackbone

    backbone = getattr(model, "backbone", model)
    if isinstance(backbone, ViTBackbone):
        raise ValueError(f"{source} is an image model (ViT): give --image FILE, not --text.")
    preprocessor = text_preprocessor(model, source)
    is_seq2seq = "encoder_token_ids" in model.input
    if target is not None and not is_seq2seq:
        raise ValueError("--target is for encoder-decoder models (T5); this model reads one "
                         "text: drop --target.")
    answering = getattr(model, "task_name", None) == "question_answering"
    if answering != (context is not None):
        raise ValueError("--context goes with question answering models: give the question as "
                         "--text and the passage as --context." if answering else
                         "--context is for question answering models; drop it.")
    if answering:
        x = {name: value[:1] for name, value in preprocessor(([text], [context])).items()}
    else:
        x = preprocessor(([text], [target]) if target is not None else [text])
        x = x[0] if isinstance(x, tuple) else x
    x = {name: value.numpy() for name, value in x.items()}
    x = trim_padding(x)
    tokenizer = preprocessor.tokenizer
    # What each stack reads: BART's classifier gives its text to both (`backbone_inputs`).
    stacks = model.backbone_inputs(x) if hasattr(model, "backbone_inputs") else x
    if "encoder_token_ids" in stacks:
        labels = {stack: tokens(tokenizer, stacks[f"{stack}_token_ids"][0])
                  for stack in ("encoder", "decoder")}
    else:
        kind = "encoder" if "segment_ids" in backbone.input else "decoder"
        labels = {kind: tokens(tokenizer, x["token_ids"][0])}
    return x, labels


def text_preprocessor(model, source):
    """A deterministic strings -> inputs layer for `model`: its own preprocessor when that is
    one; else one made from its tokenizer (masked LM and token classifiers: their own
    preprocessors mask at random or read words), or from the tokenizer files of a Hugging
    Face folder (a checkpoint loaded as a backbone has none attached)."""
    from zoo.preprocessing import (
        DEFAULT_SEQUENCE_LENGTH,
        CausalLMPreprocessor,
        MaskedLMPreprocessor,
        Seq2SeqLMPreprocessor,
        TextClassifierPreprocessor,
        TokenClassifierPreprocessor,
        tokenizer_from_folder,
    )

    backbone = getattr(model, "backbone", model)
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None and not isinstance(
        preprocessor, (MaskedLMPreprocessor, TokenClassifierPreprocessor)
    ):
        return preprocessor
    if preprocessor is not None:
        tokenizer, length = preprocessor.tokenizer, preprocessor.sequence_length
    else:
        from zoo import hub

        folder = hub.local_path(source)
        tokenizer = tokenizer_from_folder(folder) if folder.is_dir() else None
        if tokenizer is None:
            raise ValueError(
                f"{source} has no preprocessor to turn text into token ids. Give a run folder "
                "or a .keras file saved with its preprocessor (`kt train` saves it), or a "
                "Hugging Face folder with its tokenizer files (vocab.txt, spiece.model, or "
                "vocab.json + merges.txt)."
            )
        limit = getattr(backbone.config, "max_sequence_length", None)
        length = min(DEFAULT_SEQUENCE_LENGTH, limit or DEFAULT_SEQUENCE_LENGTH)
    if "encoder_token_ids" in backbone.input:
        return Seq2SeqLMPreprocessor(tokenizer, length)
    if "segment_ids" in backbone.input:
        return TextClassifierPreprocessor(tokenizer, length, style="bert")
    return CausalLMPreprocessor(tokenizer, length)


def trim_padding(inputs):
    """Cut every `[1, length]` entry to the real tokens of its padding mask (one example)."""
    trimmed = dict(inputs)
    for prefix in ("", "encoder_", "decoder_"):
        mask = inputs.get(prefix + "padding_mask")
        if mask is None:
            continue
        length = int(mask[0].sum())
        for name in ("token_ids", "segment_ids", "padding_mask"):
            if prefix + name in inputs:
                trimmed[prefix + name] = inputs[prefix + name][:, :length]
    return trimmed


def tokens(tokenizer, ids):
    return [tokenizer.id_to_token(int(i)) for i in ids]


def image_inputs(model, file):
    """One image as a batch `[1, height, width, channels]` of the model's size, and labels
    for its tokens: `cls`, then the patches by index."""
    import tensorflow as tf

    from zoo.attention_maps import patch_grid
    from zoo.preprocessing import default_image_preprocessor
    from zoo.vit import ViTBackbone

    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, ViTBackbone):
        raise ValueError(
            f"This model reads text ({type(backbone).__name__.removesuffix('Backbone')}): give "
            "--text, not --image."
        )
    data = Path(file).read_bytes() if Path(file).is_file() else None
    if data is None:
        raise FileNotFoundError(f"{file} does not exist or is not a file.")
    preprocessor = getattr(model, "preprocessor", None) or default_image_preprocessor(model)
    try:
        images = preprocessor(tf.constant([data]))
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(
            f"{file} is not an image TensorFlow can decode (JPEG, PNG, GIF, BMP or WebP): "
            f"{tf_reason(error.message)}"
        ) from None
    images = images[0] if isinstance(images, tuple) else images
    rows, columns = patch_grid(backbone)
    labels = [str(i) for i in range(rows * columns)]
    if backbone.config.use_class_token:
        labels = ["cls", *labels]
    return images.numpy(), {"encoder": labels}


def tf_reason(message):
    """The op's own words in a TF error that Keras wrapped in its call context."""
    found = re.search(r"\}\}\s*(.*?)\s*\[Op:", message, flags=re.S)
    return found.group(1) if found else message.strip().splitlines()[0]


def rollout_figure(model, images, layers_maps, last):
    """The image and its attention rollout through layers 0..`last`: from the class token to
    each patch, or averaged over the patches when the model has no class token."""
    from zoo.attention_maps import attention_rollout, patch_grid
    from zoo.attention_plots import plot_rollout

    backbone = getattr(model, "backbone", model)
    rollout = attention_rollout(layers_maps)[0]
    if backbone.config.use_class_token:
        weights = rollout[0, 1:]
    else:
        weights = rollout.mean(axis=0)
    weights = weights.reshape(patch_grid(backbone))
    return plot_rollout(images[0], weights,
                        title=f"attention rollout through layers 0 to {last}")
