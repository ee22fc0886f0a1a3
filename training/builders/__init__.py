"""The project's TFDS builders, one per file, for the offline sources of docs/data.md.

Importing this package registers them with TFDS, so `tfds.load("fortunes", split="train")`
works like any TFDS name. `training.datasets` is the front door; see its docstring.
"""

from training.builders.botchan import Botchan
from training.builders.conll_sample import ConllSample
from training.builders.debian_descriptions import DebianDescriptions
from training.builders.digits import Digits
from training.builders.fashion_mnist_local import FashionMnistLocal
from training.builders.fortunes import Fortunes
from training.builders.gettext_translations import GettextTranslations
from training.builders.squad_sample import SquadSample

BUILDERS = {builder.name: builder for builder in (
    FashionMnistLocal, Digits, Fortunes, Botchan, GettextTranslations, ConllSample, SquadSample,
    DebianDescriptions)}

__all__ = ["BUILDERS", "Botchan", "ConllSample", "DebianDescriptions", "Digits",
           "FashionMnistLocal", "Fortunes", "GettextTranslations", "SquadSample"]
