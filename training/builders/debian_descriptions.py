"""Summaries written by people: Debian's package descriptions, each long description with its
one-line synopsis.

`apt-get update -o Acquire::Languages=en` writes the English descriptions of every package of
the archive to `/var/lib/apt/lists/*_i18n_Translation-en` (lz4-compressed, `.lz4`, where apt
is configured to keep its lists compressed, as in Debian's container images). A record is a
block of `Field: value` lines ended by a blank line; `Description-en:` holds the synopsis and
the indented lines after it the long description, where a line of " ." is a paragraph break
and a line indented by two spaces or more is shown verbatim (a list item, a code line). The
`*_Packages` lists of the same update name each binary package's source package.

>>> record = parse_record("Package: hello\\nDescription-en: example package\\n"
...                       " GNU hello prints a\\n friendly greeting.\\n .\\n  * one item")
>>> record["Package"], synopsis_and_document(record["Description-en"])
('hello', ('example package', 'GNU hello prints a friendly greeting.\\n\\n* one item'))
"""

import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, in_test_split

TRANSLATIONS = "*_i18n_Translation-en"
PACKAGES = "*_Packages"
MIN_WORDS = 15  # long descriptions shorter than this are mostly "transitional package" notes
TEST_PERCENT, VALIDATION_PERCENT = 10, 10


def read_list(path):
    """The text of an apt list file, lz4-compressed (`.lz4`, PyPI `lz4`) or plain."""
    if path.name.endswith(".lz4"):
        import lz4.frame

        with lz4.frame.open(path, "rb") as file:
            return file.read().decode("utf-8", errors="replace")
    return path.read_text(encoding="utf-8", errors="replace")


def parse_record(text):
    """One Debian control record -> `{field: value}`; a field's continuation lines are kept
    in its value after a newline, as they are written (with their leading space)."""
    fields, key = {}, None
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def records(text):
    """The records of an apt list file: blocks separated by blank lines."""
    return [parse_record(block) for block in text.split("\n\n") if block.strip()]


def synopsis_and_document(description):
    """A `Description` field -> `(synopsis, long description)`.

    The long description's lines are joined with spaces into paragraphs, the paragraphs
    with a blank line; a verbatim line (two spaces or more) keeps a line of its own, without
    its indentation."""
    synopsis, *lines = description.split("\n")
    paragraphs, current = [], []
    for line in lines + [" ."]:
        if line.strip() == ".":
            if current:
                paragraphs.append("".join(current).strip())
            current = []
        elif line.startswith("  "):
            current.append("\n" + line.strip())
        else:
            current.append(" " + line.strip())
    return synopsis.strip(), "\n\n".join(paragraphs).replace(" \n", "\n")


def source_packages(paths):
    """`{binary package: source package}` from `*_Packages` lists (a package without a
    `Source:` field is its own source; the version in "src (1.2-3)" is dropped)."""
    sources = {}
    for path in paths:
        for fields in records(read_list(path)):
            if "Package" in fields and "Source" in fields:
                sources.setdefault(fields["Package"], fields["Source"].split()[0])
    return sources


def descriptions(paths, sources=None, min_words=MIN_WORDS):
    """`(package, source, synopsis, document)` tuples, sorted by package, deduplicated.

    The first list (in the order given) that describes a package gives its description.
    Packages are kept in name order while their long description has `min_words` words or
    more and neither their long description nor their synopsis came before: siblings that
    share a description (`-dev`, `-doc`, versioned libraries) count once.
    """
    sources = sources or {}
    described = {}
    for path in paths:
        for fields in records(read_list(path)):
            if "Package" in fields and "Description-en" in fields:
                described.setdefault(fields["Package"], fields["Description-en"])
    kept, seen_documents, seen_synopses = [], set(), set()
    for package in sorted(described):
        synopsis, document = synopsis_and_document(described[package])
        if (len(document.split()) < min_words or document in seen_documents
                or synopsis in seen_synopses):
            continue
        seen_documents.add(document)
        seen_synopses.add(synopsis)
        kept.append((package, sources.get(package, package), synopsis, document))
    return kept


def split_of(source):
    """"test", "validation" or "train" for a source package, by a hash of its name: about
    10%, 10% and 80%, the same on every machine, and every binary package of a source in
    one split."""
    if in_test_split(source, TEST_PERCENT):
        return "test"
    if in_test_split(source, TEST_PERCENT + VALIDATION_PERCENT):
        return "validation"
    return "train"


class DebianDescriptions(LocalBuilder):
    """Summarization: the long descriptions of Debian's packages (`document`, median 46 words)
    with the one-line synopsis their maintainers wrote (`summary`, median 7 words), as TFDS
    `xsum` names them, and the package name (`id`, as in `cnn_dailymail`). Read from the
    English description lists that `apt-get update -o Acquire::Languages=en` writes to
    `/var/lib/apt/lists/` (all of them: main, updates, security). Long descriptions of fewer
    than 15 words are left out, and a long description or a synopsis that an earlier package
    (in name order) already has is dropped, so siblings that share one count once. The splits
    (about 80% train, 10% validation, 10% test) go by a hash of the source package, so a
    source's binary packages never cross splits. The counts follow the archive's state at the
    last `apt-get update`: tests/training/test_datasets.py gives those of 2026-12-07."""

    VERSION = tfds.core.Version("1.0.0")
    HOMEPAGE = "https://www.debian.org/doc/debian-policy/ch-controlfields.html#description"
    HOW_TO_GET = "run `make data` (it runs `apt-get update -o Acquire::Languages=en`)"

    @classmethod
    def default_source(cls):
        return "/var/lib/apt/lists"

    def _info(self):
        return self.dataset_info(
            tfds.features.FeaturesDict({
                "document": tfds.features.Text(),
                "summary": tfds.features.Text(),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("document", "summary"),
        )

    def list_files(self, pattern):
        """The source folder's files matching `pattern`, plain or `.lz4`, sorted by name."""
        return sorted(set(self.source.glob(pattern)) | set(self.source.glob(pattern + ".lz4")))

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        translations = self.list_files(TRANSLATIONS)
        if not translations:
            raise FileNotFoundError(
                f"{self.name}: no {TRANSLATIONS}[.lz4] lists in {self.source}. To get them, "
                f"{self.HOW_TO_GET}; or pass `source=` a folder that holds them."
            )
        found = descriptions(translations, source_packages(self.list_files(PACKAGES)))
        return {split: self._generate_examples(found, split)
                for split in ("train", "validation", "test")}

    def _generate_examples(self, found, split):
        for package, source, synopsis, document in found:
            if split_of(source) == split:
                yield package, {"document": document, "summary": synopsis, "id": package}
