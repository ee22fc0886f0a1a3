"""`kt evaluate`: a run's figures on a dataset split, saved in the run's results.json."""

HELP = "evaluate a run on a dataset split (default: its dataset's test split)"


def add_arguments(parser):
    parser.add_argument("run", help="a run folder (kt train --out)")
    parser.add_argument("--dataset", help="default: the run's dataset")
    parser.add_argument("--split", help="default: test (validation where there is none)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-beams", type=int, default=1,
                        help="translation, summarization: beam search with this many beams "
                             "(default 1: greedy)")
    parser.add_argument("--length-penalty", type=float,
                        help="beam search: divides a beam's log-probability by its length to "
                             "this power (default 1.0)")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=0,
                        help="translation, summarization: never repeat an n-gram of this size "
                             "(default 0: off)")
    parser.add_argument("--max-examples", type=int,
                        help="translation, summarization: score the first N examples "
                             "(default: 200 translations, every summary)")
    parser.add_argument("--lead-words", type=int, default=8,
                        help="summarization: the baseline summary is a document's first N "
                             "words (default 8)")


def run(args):
    from training import checks, datasets, evaluate, features, runs

    checks.at_least("--batch-size", args.batch_size)
    checks.at_least("--num-beams", args.num_beams)
    checks.at_least("--lead-words", args.lead_words)
    checks.at_least("--max-examples", args.max_examples)
    checks.at_least("--no-repeat-ngram-size", args.no_repeat_ngram_size, low=0)
    checks.positive("--length-penalty", args.length_penalty)
    config = runs.read_config(args.run)
    dataset = args.dataset or config["dataset"]
    if features.roles_of(dataset) is None:
        raise ValueError(f"--dataset: unknown dataset {dataset!r}. Datasets: "
                         f"{', '.join(sorted(features.FEATURES))}.")
    if args.split:
        datasets.check_split(dataset, args.split)
    model = runs.load_model(args.run)
    args.split = args.split or datasets.evaluation_split(dataset)
    generation = generation_options(args)
    limits = {} if args.max_examples is None else {"max_translations": args.max_examples,
                                                   "max_summaries": args.max_examples}
    scores = evaluate.evaluate(model, dataset, args.split, args.batch_size,
                               lead_words=args.lead_words, generation=generation, **limits)
    results_path = runs.results_path(args.run)
    results = runs.read_results(args.run)
    results[f"{dataset}:{args.split}"] = scores
    runs.write_json(results_path, results)
    width = max(len(k) for k in scores)
    source = config.get("from_pretrained") or config["size"]
    print(f"{config['model']} ({source}, {config['task']}) on {dataset} {args.split}:")
    for key, value in scores.items():
        print(f"  {key.ljust(width)}  {value:.4f}")
    return 0


def generation_options(args):
    """The `model.generate` options the flags ask for (greedy decoding when none)."""
    options = {}
    if args.num_beams > 1:
        options.update(sampler="beam", num_beams=args.num_beams)
    if args.length_penalty is not None:
        options["length_penalty"] = args.length_penalty
    if args.no_repeat_ngram_size:
        options["no_repeat_ngram_size"] = args.no_repeat_ngram_size
    return options or None
