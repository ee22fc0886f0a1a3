"""The `kt` command line: one subcommand per module of `training/commands/`.

    kt models                                   # the zoo: names, sizes, tasks, parameters
    kt train vit --task classifier --dataset fashion_mnist_local --out runs/vit
    kt evaluate runs/vit
    kt export runs/vit --to savedmodel,tflite
    kt verify runs/vit
    kt generate runs/gpt --prompt "Once upon a time"
    kt answer runs/qa --question "Who wrote it?" --context "Ada wrote it."
    kt attention runs/vit --image shoe.png

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`
(the exit status). Library code never prints; the commands do. A `ValueError` or
`FileNotFoundError` from the library is a user error: it is printed as one line, with exit
status 2, not as a traceback.
"""

import argparse
import os
import sys

from training.commands import (
    answer,
    attention,
    evaluate,
    export,
    generate,
    models,
    train,
    verify,
)

# The one table of subcommands: name -> its module under training/commands/ (each imports
# TensorFlow and the zoo only when it runs, so `kt --help` is quick).
COMMANDS = {
    "models": models,
    "train": train,
    "evaluate": evaluate,
    "export": export,
    "verify": verify,
    "generate": generate,
    "answer": answer,
    "attention": attention,
}


def parser(commands=None):
    """The argument parser of `kt`, with one subparser per command."""
    commands = COMMANDS if commands is None else commands
    top = argparse.ArgumentParser(
        prog="kt", description="keras-transformers: build, train, export and inspect models."
    )
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in commands.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return top


def main(argv=None):
    """Entry point of the `kt` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"kt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
