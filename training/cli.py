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
(the exit status). Library code never prints; the commands do. Every error is printed as one
line, `kt COMMAND: error: ...`, with exit status 2; `--verbose` adds the traceback.
"""

import argparse
import contextlib
import sys
import traceback

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
from training.quiet import quiet

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
    """The argument parser of `kt`, with one subparser per command. `--verbose` goes before
    or after the command."""
    commands = COMMANDS if commands is None else commands
    top = argparse.ArgumentParser(
        prog="kt", description="keras-transformers: build, train, export and inspect models."
    )
    top.add_argument("--verbose", action="store_true",
                     help="show tracebacks and TensorFlow's own logs")
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks and TensorFlow's own logs")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in commands.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP,
                                    parents=[verbose])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return top


# Errors that are the user's (a bad value, a missing or existing file): their message is
# the whole story. Any other error is printed as its type and first line.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


def main(argv=None):
    """Entry point of the `kt` console script; returns the exit status: 0, 2 for an error
    (one line on stderr; the traceback too with `--verbose`), 130 when interrupted. Without
    `--verbose` the dependencies' own output stays out of the terminal (`training.quiet`)."""
    args = parser().parse_args(argv)
    with contextlib.nullcontext() if args.verbose else quiet() as log:
        try:
            return args.handler(args) or 0
        except KeyboardInterrupt:
            print(f"kt {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # noqa: BLE001 (every error is reported, never a traceback)
            if args.verbose:
                traceback.print_exc()
            message = one_line(error, args.verbose)
            if log is not None and not isinstance(error, USER_ERRORS) and \
                    log.path.stat().st_size:
                log.keep = True
                message += f" (TensorFlow's own log: {log.path})"
            print(f"kt {args.command}: error: {message}", file=sys.stderr)
            return 2


def one_line(error, verbose=False):
    """The message of `error` as one line: a user error's own words; for anything else its
    type and first line, and how to see the rest."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}."
    else:
        text = str(error).strip()
    if not isinstance(error, USER_ERRORS):
        first = text.splitlines()[0] if text else ""
        text = f"{type(error).__name__}: {first[:300]}"
        if not verbose:
            text += " (run with --verbose for the traceback)"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
