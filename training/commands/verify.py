"""`kt verify RUN`: the run's exported artifacts against its Keras model, on test examples.

    kt verify runs/vit                      # every artifact under runs/vit/export
    kt verify runs/vit --examples 512 --split test

Runs the Keras model, the newest SavedModel version (in a fresh process that imports only
TensorFlow and tf-text) and each `.tflite` file on the same examples of the run's dataset;
prints max |diff|, top-1 agreement, size and latency, and writes `verify.json` beside them.
"""

import json
from pathlib import Path

HELP = "compare a run's SavedModel and TFLite exports with its Keras model"


def add_arguments(parser):
    parser.add_argument("run", help="a run folder (kt train --out), a .keras file, a checkpoint "
                        "or a Hugging Face name (org/name)")
    parser.add_argument("--exports", help="the export folder (default: RUN/export)")
    parser.add_argument("--dataset", help="the examples' dataset (default: the run's)")
    parser.add_argument("--split", help="the split (default: test; validation where there is "
                        "none)")
    parser.add_argument("--examples", type=int, default=256, help="examples (default 256)")


def artifacts(folder):
    """The newest version of each SavedModel under `folder/savedmodel`, and the .tflite files."""
    from export.layout import versions

    folder = Path(folder)
    found = []
    saved = folder / "savedmodel"
    if saved.is_dir():
        for model_dir in sorted(p for p in saved.iterdir() if p.is_dir()):
            numbers = versions(model_dir)
            if numbers:
                found.append(model_dir / str(numbers[-1]))
    found += sorted(folder.glob("*.tflite"))
    if not found:
        raise FileNotFoundError(f"no exports under {folder}: run `kt export` first.")
    return found


def run(args):
    import export
    from training import checks, datasets, pipelines, runs
    from training.commands.export import export_folder
    from zoo import hub

    checks.at_least("--examples", args.examples)
    if not Path(args.run).exists() and not hub.is_name(args.run):
        raise FileNotFoundError(f"{args.run} does not exist: give a run folder, a .keras file, "
                                "a checkpoint or a Hugging Face name (org/name).")
    folder = export_folder(args.run, args.exports, "--exports")
    found = artifacts(folder)
    model = runs.load_model(args.run)
    dataset = args.dataset
    if dataset is None and runs.is_run(args.run):
        dataset = runs.read_config(args.run).get("dataset")
    if dataset is None:
        raise ValueError("which examples? pass --dataset NAME (the run records none).")
    split = args.split or datasets.evaluation_split(dataset)
    batch = next(iter(pipelines.pipeline(model, dataset, f"{split}[:{args.examples}]",
                                         batch_size=args.examples, training=False)))
    x = batch[0]
    inputs = {k: v.numpy() for k, v in x.items()} if isinstance(x, dict) else x.numpy()
    report = export.verify(model, found, inputs)
    print(report)
    (folder / "verify.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
