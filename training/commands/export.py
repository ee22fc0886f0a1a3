"""`kt export RUN`: a run's model as a TF Serving SavedModel and TFLite files.

    kt export runs/vit --to savedmodel,tflite --quantize none,int8
    kt export runs/bert --to savedmodel --out exports --name sentiment
    kt export runs/bert --to savedmodel --quantize none,int8-weights

`--quantize` lists variants, each for the format it names: `fp16`, `dynamic` and `int8`
are TFLite's (the converter's quantization), `int8-weights` is the SavedModel's (Keras'
int8: `model.quantize("int8")`, int8 weights with a scale per output channel, each matmul's
inputs quantized per row on the fly), and `none`, the float model, is both's. A format none
of whose variants is listed writes its float one.

Writes, under `--out` (default `RUN/export/`): `savedmodel/<name>/<version>/` (and
`savedmodel/models.config`), `savedmodel/<name>_int8/<version>/` for `int8-weights`, and
`<name>.tflite`, `<name>_<quantize>.tflite`. TFLite's int8 calibrates on
`--calibration-examples` training examples of the run's dataset (`--dataset` to choose).
"""

from pathlib import Path

HELP = ("export a run's model: SavedModel for TF Serving (float, int8-weights), TFLite "
        "(float, fp16, dynamic, int8)")
FORMATS = ("savedmodel", "tflite")
TFLITE_QUANTIZE = ("none", "fp16", "dynamic", "int8")
SAVEDMODEL_QUANTIZE = ("none", "int8-weights")
QUANTIZE = (*TFLITE_QUANTIZE, "int8-weights")


def add_arguments(parser):
    parser.add_argument("run", help="a run folder (kt train --out), a .keras file, a checkpoint "
                        "or a Hugging Face name (org/name)")
    parser.add_argument("--to", default="savedmodel,tflite",
                        help="comma-separated formats: savedmodel, tflite (default: both)")
    parser.add_argument("--quantize", default="none",
                        help="comma-separated variants: none (both formats), fp16, dynamic, "
                             "int8 (TFLite), int8-weights (SavedModel: Keras int8)")
    parser.add_argument("--out", help="the export folder (default: RUN/export)")
    parser.add_argument("--name", help="the model's name (default: <family>_<task>)")
    parser.add_argument("--version", type=int, help="the SavedModel version (default: next)")
    parser.add_argument("--overwrite", action="store_true", help="replace that version")
    parser.add_argument("--dataset", help="int8 calibration data (default: the run's dataset)")
    parser.add_argument("--calibration-examples", type=int, default=200)


def parse_list(value, allowed, what):
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise ValueError(f"unknown {what} {unknown or value!r}; choose from {', '.join(allowed)}.")
    return items


def export_folder(run, out=None, flag="--out"):
    """`--out`, else `<run>/export` for a run folder, else `<file's folder>/export`; a
    Hugging Face name has no folder of its own: it needs `flag`."""
    from zoo import hub

    if out:
        return Path(out)
    if hub.is_name(run):
        what = ("a Hugging Face name" if run.startswith(hub.PREFIX) else
                "not a local path, so a Hugging Face name")
        raise ValueError(f"{run} is {what}, which has no folder for the exports: pass {flag} "
                         "FOLDER.")
    run = Path(run)
    return (run if run.is_dir() else run.parent) / "export"


def calibration_data(model, run, dataset, examples):
    """Batches of model inputs from the run's training split, for int8."""
    from training import pipelines, runs

    if dataset is None and runs.is_run(run):
        dataset = runs.read_config(run).get("dataset")
    if dataset is None:
        raise ValueError("--quantize int8 needs calibration data: pass --dataset NAME.")
    return pipelines.pipeline(model, dataset, f"train[:{examples}]", batch_size=32,
                              training=False)


def run(args):
    import export
    from export.layout import check_name
    from export.litert import check_int8
    from export.savedmodel import default_name
    from training import checks, runs

    formats = parse_list(args.to, FORMATS, "format")
    variants = parse_list(args.quantize, QUANTIZE, "quantization")
    for variant in variants:
        owner = "savedmodel" if variant in SAVEDMODEL_QUANTIZE else "tflite"
        if variant != "none" and owner not in formats:
            raise ValueError(f"--quantize {variant} is a {owner} variant, and --to names "
                             f"{', '.join(formats)}: add {owner} to --to or drop {variant}.")
    checks.at_least("--version", args.version)
    checks.at_least("--calibration-examples", args.calibration_examples)
    if args.name is not None:
        check_name(args.name)
    folder = checks.writable_folder("--out", export_folder(args.run, args.out))
    model = runs.load_model(args.run)
    name = args.name or default_name(model)
    savedmodel_variants = [v for v in variants if v in SAVEDMODEL_QUANTIZE] or ["none"]
    tflite_variants = [v for v in variants if v in TFLITE_QUANTIZE] or ["none"]
    if "tflite" in formats and "int8" in tflite_variants:
        check_int8(model)  # before anything is written
    if "savedmodel" in formats and "none" in savedmodel_variants:
        path = export.saved_model(model, folder / "savedmodel", name=name, version=args.version,
                                  overwrite=args.overwrite)
        print(f"SavedModel: {path}")
    if "tflite" in formats:
        for variant in tflite_variants:
            quantize = None if variant == "none" else variant
            data = None
            if quantize == "int8":
                data = calibration_data(model, args.run, args.dataset, args.calibration_examples)
            suffix = "" if quantize is None else f"_{quantize}"
            path = export.tflite(model, folder / f"{name}{suffix}.tflite", quantize=quantize,
                                 representative_data=data)
            print(f"TFLite ({variant}): {path}")
    if "savedmodel" in formats and "int8-weights" in savedmodel_variants:
        model.quantize("int8")  # last: the exports above take the float model
        path = export.saved_model(model, folder / "savedmodel", name=f"{name}_int8",
                                  version=args.version, overwrite=args.overwrite)
        print(f"SavedModel (int8-weights): {path}")
    return 0
