"""The `kt` subcommands, one module each; `training/cli.py` lists them."""
