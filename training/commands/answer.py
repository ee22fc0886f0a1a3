"""`kt answer RUN --question "..." --context "..."`: a question answering model's answer.

    kt answer runs/minilm-squad --question "Who wrote it?" --context "Ada wrote it."
    kt answer runs/minilm-squad --question "When?" --context-file article.txt --json

Prints the answer (or "(no answer)"), its byte offsets in the context and its score; `--json`
prints them as one JSON object, as the SavedModel's `answer` signature returns them.
"""

import json
from pathlib import Path

HELP = "answer a question about a context with a question answering model"


def add_arguments(parser):
    parser.add_argument("target", metavar="RUN_OR_PATH",
                        help="a run folder, a .keras file, a Hugging Face folder or a Hub "
                             "name (org/name, hf://org/name[@rev])")
    parser.add_argument("--question", required=True)
    context = parser.add_mutually_exclusive_group(required=True)
    context.add_argument("--context", help="the text to find the answer in")
    context.add_argument("--context-file", metavar="FILE", help="read the context from FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args):
    from training import checks, runs

    checks.not_empty("--question", args.question)
    if args.context is not None:
        checks.not_empty("--context", args.context)
    else:
        checks.existing("--context-file", args.context_file)
    model = runs.load_model(args.target)
    if getattr(model, "task_name", None) != "question_answering":
        raise ValueError(f"{args.target} is a {type(model).__name__}, not a question answering "
                         "model (kt train bert --task question_answering ...).")
    context = args.context
    if context is None:
        path = Path(args.context_file)
        if not path.is_file():
            raise FileNotFoundError(f"--context-file {path} does not exist.")
        context = path.read_bytes()  # offsets are bytes of the file as it is
    found = model.answer(args.question, context)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    elif found["start"] < 0:
        print(f"(no answer)  score {found['score']:.4f}")
    else:
        print(f"{found['answer']}  [bytes {found['start']}:{found['end']}]  "
              f"score {found['score']:.4f}")
    return 0
