"""English -> German / Spanish sentence pairs from the gettext catalogs of installed programs."""

import gettext

import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, in_test_split

LANGUAGES = {"de": "German", "es": "Spanish"}


def read_catalog(path):
    """The (English, translation) pairs of one `.mo` catalog, read by the standard library.

    The header entry and empty translations are left out; a message with a context
    (`msgctxt`) loses it; a message with plural forms gives its singular and first form.
    """
    with open(path, "rb") as file:
        catalog = gettext.GNUTranslations(file)._catalog  # the parsed {msgid: msgstr} table
    pairs = []
    for key, target in catalog.items():
        if isinstance(key, tuple):  # plural forms: (msgid, form index)
            key, form = key
            if form != 0:
                continue
        source = key.rpartition("\x04")[2]  # "context\x04msgid" -> msgid
        if source and target:
            pairs.append((source, target))
    return pairs


class GettextTranslations(LocalBuilder):
    """Parallel text, English -> German (`gettext_translations/de`) or Spanish (`/es`): the
    messages of the gettext catalogs under `/usr/share/locale/<lang>/LC_MESSAGES/*.mo` that the
    machine's Debian packages installed (git, coreutils, postgres, gnupg, iso-codes, ...). User
    interface strings, short, with `%s`-style placeholders. Pairs are deduplicated; a catalog
    that does not decode with its declared charset is skipped. The test split is about 10% of
    the English strings, chosen by a hash, so all translations of one string share a split.
    The counts depend on the packages installed: the project's machine image gives the numbers
    in tests/training/test_datasets.py."""

    HOMEPAGE = "https://www.gnu.org/software/gettext/"
    HOW_TO_GET = ("install Debian packages that ship translations (most do; `make data` adds "
                  "none)")
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=code, description=f"English -> {language}")
        for code, language in LANGUAGES.items()
    ]

    @classmethod
    def default_source(cls):
        return "/usr/share/locale"

    @property
    def language(self):
        return self.builder_config.name

    def _info(self):
        return self.dataset_info(
            tfds.features.Translation(languages=("en", self.language)),
            supervised_keys=("en", self.language),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        catalogs = sorted(self.source_file(self.language, "LC_MESSAGES").glob("*.mo"))
        if not catalogs:
            raise FileNotFoundError(
                f"{self.name}: no *.mo catalogs in {self.source / self.language / 'LC_MESSAGES'}."
                f" To get some, {self.HOW_TO_GET}."
            )
        pairs = set()
        for path in catalogs:
            try:
                pairs.update(read_catalog(path))
            except (UnicodeDecodeError, OSError):  # e.g. net-tools' de catalog: latin-1 as utf-8
                continue
        pairs = sorted(pairs)
        return {"train": self._generate_examples(pairs, test=False),
                "test": self._generate_examples(pairs, test=True)}

    def _generate_examples(self, pairs, test):
        for index, (source, target) in enumerate(pairs):
            if in_test_split(source) == test:
                yield index, {"en": source, self.language: target}
