"""`kt train`: train a zoo model on a dataset into a run folder; the same command resumes it."""

import json
import sys

HELP = "train a model on a dataset into a run folder (running it again resumes the run)"


def add_arguments(parser):
    parser.add_argument("model", help="a zoo family (kt models lists them): bart, bert, "
                                      "gpt, t5, transformer, vit")
    parser.add_argument("--dataset", required=True, help="a dataset name, e.g. digits, fortunes")
    parser.add_argument("--out", required=True, help="the run folder, e.g. runs/vit-digits")
    parser.add_argument("--size", default="tiny", help="a preset of the family (default tiny)")
    parser.add_argument("--task", help="a task of the family (default: what the dataset feeds)")
    parser.add_argument("--split", default="train", help="the training split (default train)")
    parser.add_argument("--validation-split", default="auto",
                        help="'auto' (validation/dev split, else the last 10%% of --split), a "
                             "split, or 'none'")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch (data repeats)")
    parser.add_argument("--lr", type=float, dest="learning_rate",
                        help="peak learning rate (default: the task's recipe)")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--warmup-ratio", type=float)
    parser.add_argument("--decay", choices=["cosine", "linear", "constant"])
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--clipnorm", type=float)
    parser.add_argument("--recipe", metavar="NAME",
                        help="a named recipe instead of the task's (transformer_paper: Adam "
                             "0.9/0.98/1e-9, 4,000 warmup steps, inverse square root decay, "
                             "label smoothing 0.1); the flags above change its fields")
    parser.add_argument("--mixed-precision", action="store_true", help="train in bfloat16")
    parser.add_argument("--sequence-length", type=int)
    parser.add_argument("--vocabulary-size", type=int, default=8000,
                        help="text from scratch: the vocabulary learned from the training split")
    parser.add_argument("--from-pretrained", metavar="PATH",
                        help="start from a checkpoint: a Hugging Face folder, a .gguf file "
                             "or a Hub name (org/name, hf://org/name[@rev][/f.gguf])")
    parser.add_argument("--lora-rank", type=int, metavar="R",
                        help="train a rank-R LoRA update of the attention projections, the "
                             "backbone frozen (the saved model holds the merged weights)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE",
                        help="a config field or task argument, e.g. --set num_layers=4 "
                             "--set image_shape=28,28,1 (repeatable)")
    parser.add_argument("--patience", type=int, help="early stopping on val_loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", help="auto, one_device, mirrored, multi_worker, tpu")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run folder that holds another run")
    parser.add_argument("--restart", action="store_true",
                        help="train this run again from the start instead of resuming it")


def parse_override(text):
    """`"num_layers=4"` -> `("num_layers", 4)`; `"image_shape=28,28,1"` -> a tuple; values are
    JSON when they parse as JSON, else strings."""
    if "=" not in text:
        raise ValueError(f"--set takes FIELD=VALUE, got {text!r}.")
    key, value = text.split("=", 1)
    parts = [_value(part) for part in value.split(",")] if "," in value else None
    return key.strip(), tuple(parts) if parts else _value(value)


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def settings_from(args):
    from training.train import TrainSettings

    return TrainSettings(
        model=args.model, dataset=args.dataset, out=args.out, size=args.size, task=args.task,
        split=args.split,
        validation_split=None if args.validation_split == "none" else args.validation_split,
        epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, decay=args.decay, label_smoothing=args.label_smoothing,
        clipnorm=args.clipnorm, recipe=args.recipe, mixed_precision=args.mixed_precision,
        sequence_length=args.sequence_length, vocabulary_size=args.vocabulary_size,
        from_pretrained=args.from_pretrained, lora_rank=args.lora_rank,
        overrides=dict(parse_override(o) for o in args.overrides),
        patience=args.patience, seed=args.seed, strategy=args.strategy,
    )


def summary_table(history):
    """The per-epoch figures as an aligned text table."""
    if not history:
        return "(no finished epoch)"
    keys = ["epoch"] + sorted(k for k in history[0] if k != "epoch")
    rows = [keys] + [[str(e["epoch"])] + [f"{e.get(k, float('nan')):.4f}" for k in keys[1:]]
                     for e in history]
    widths = [max(len(row[i]) for row in rows) for i in range(len(keys))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def run(args):
    from training import train

    settings = settings_from(args)
    verbose = 1 if sys.stdout.isatty() else 2
    result = train.train(settings, overwrite=args.overwrite, verbose=verbose,
                         restart=args.restart, notify=lambda line: print(line, flush=True))
    if result.already_complete:
        print(f"{settings.out} is already trained ({len(result.history)} epochs); "
              "`kt evaluate` it, or pass --overwrite to train it again.")
        print(summary_table(result.history))
        return 0
    print()
    if result.initial:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.initial.items()))
        print(f"Before training (validation): {figures}")
    print(summary_table(result.history))
    if result.stopped_on_nan is not None:
        epoch, batch = result.stopped_on_nan
        good = len(result.history)
        kept = (f"the last good model is {settings.out}/checkpoints/last.keras (epoch {good})"
                if good else "no epoch finished, so there is no model to keep")
        print(f"kt train: error: the loss became NaN at epoch {epoch + 1}, batch {batch + 1}; "
              f"training stopped and {kept}. Lower --lr or raise --warmup-ratio, or check "
              "the data, then run again with --overwrite.", file=sys.stderr)
        return 1
    print(f"Trained {result.epochs_trained} epoch(s) in {result.seconds:.1f} s; the model is "
          f"{settings.out}/model.keras. Next: kt evaluate {settings.out}")
    return 0
