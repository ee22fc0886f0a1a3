"""`kt attention`: the PNGs it writes for every family (their panels, sizes, contents), and
clear errors for input a model cannot take."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from training.cli import main
from zoo.attention_plots import (
    DPI,
    attention_figure_inches,
    heads_figure_inches,
    rollout_figure_inches,
)
from zoo.preprocessing import WordPieceTokenizer, preprocessor_for

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox",
              "jump", "##s", "over", "lazy", "dog", "."]
TEXT = "the quick brown fox jumps"
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def saved(model, path, tokenizer=None, sequence_length=16):
    """`model` with its preprocessor, saved as a .keras file; returns the path."""
    if tokenizer is not False:
        model.preprocessor = preprocessor_for(model, tokenizer, sequence_length)
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


def pixels(inches):
    return tuple(round(side * DPI) for side in inches)


def assert_picture(path, inches):
    """A PNG of the expected size that is not blank: many colors, much of it not white."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert (image.shape[1], image.shape[0]) == pixels(inches)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    assert (image.min(axis=-1) < 200).mean() > 0.1


def kt(*args):
    return main(["attention", *map(str, args)])


@pytest.mark.slow
def test_bert_writes_both_pictures_per_layer_with_one_panel_per_head(tmp_path, tokenizer,
                                                                     capsys):
    model = zoo.build("bert", task="classifier", num_classes=2, num_layers=3, num_heads=4,
                      vocabulary_size=len(VOCABULARY))
    path = saved(model, tmp_path / "bert.keras", tokenizer)
    assert kt(path, "--text", TEXT, "--out", tmp_path / "out") == 0

    expected = {f"encoder_layer_{i}{suffix}.png" for i in range(3) for suffix in ("", "_heads")}
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(tmp_path / "out" / name) for name in expected)
    for i in range(3):
        assert_picture(tmp_path / "out" / f"encoder_layer_{i}_heads.png", heads_figure_inches(4))
        assert_picture(tmp_path / "out" / f"encoder_layer_{i}.png", attention_figure_inches())


@pytest.mark.slow
def test_the_heads_picture_grows_with_the_heads(tmp_path, tokenizer):
    sizes = {}
    for heads in (2, 8):
        model = zoo.build("gpt", task="causal_lm", num_heads=heads,
                          vocabulary_size=len(VOCABULARY))
        path = saved(model, tmp_path / f"gpt{heads}.keras", tokenizer)
        assert kt(path, "--text", TEXT, "--layer", "-1", "--out", tmp_path / str(heads)) == 0
        picture = tmp_path / str(heads) / "decoder_layer_1_heads.png"
        assert_picture(picture, heads_figure_inches(heads))
        sizes[heads] = Image.open(picture).size
    # 2 heads: one row of 2 panels; 8 heads: two rows of 4.
    assert sizes[8][0] > sizes[2][0] and sizes[8][1] > sizes[2][1]


@pytest.mark.slow
def test_t5_writes_encoder_decoder_and_cross_pictures(tmp_path, tokenizer, capsys):
    model = zoo.build("t5", "tiny_v1_1", task="seq2seq_lm", vocabulary_size=len(VOCABULARY))
    path = saved(model, tmp_path / "t5.keras", tokenizer)
    out = tmp_path / "out"
    assert kt(path, "--text", TEXT, "--target", "the lazy dog", "--layer", "1", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{kind}_layer_1{suffix}.png" for kind in ("encoder", "decoder", "cross")
        for suffix in ("", "_heads")
    )
    assert_picture(out / "cross_layer_1_heads.png", heads_figure_inches(3))
    # The decoder's third layer exists, the encoder's does not.
    assert kt(path, "--text", TEXT, "--layer", "2", "--out", out) == 2
    assert "2 encoder layers" in capsys.readouterr().err
    assert kt(path, "--text", TEXT, "--layer", "2", "--kind", "decoder", "--out", out) == 0
    assert (out / "decoder_layer_2.png").is_file()


@pytest.mark.slow
def test_bart_classifier_shows_its_text_read_by_both_stacks(tmp_path, capsys):
    """BART's classifier reads its text with the encoder and, shifted behind `</s>`, with the
    decoder: three kinds of maps, each stack's layers counted apart."""
    model = zoo.from_pretrained(REFERENCE / "bart_classifier")
    path = saved(model, tmp_path / "bart.keras", tokenizer=False)
    out = tmp_path / "out"
    assert kt(path, "--text", "hello world", "--layer", "2", "--out", out) == 2
    assert "2 encoder layers" in capsys.readouterr().err
    assert kt(path, "--text", "hello world", "--layer", "0", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{kind}_layer_0{suffix}.png" for kind in ("encoder", "decoder", "cross")
        for suffix in ("", "_heads"))
    assert_picture(out / "cross_layer_0_heads.png", heads_figure_inches(3))


@pytest.mark.slow
def test_vit_writes_maps_and_the_rollout_over_the_image(tmp_path):
    model = zoo.build("vit", task="classifier", num_classes=2)
    path = saved(model, tmp_path / "vit.keras")
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype("uint8")
    Image.fromarray(image).save(tmp_path / "picture.png")
    out = tmp_path / "out"
    assert kt(path, "--image", tmp_path / "picture.png", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["rollout.png"] + [f"encoder_layer_{i}{s}.png" for i in range(2) for s in ("", "_heads")]
    )
    assert_picture(out / "rollout.png", rollout_figure_inches())
    assert_picture(out / "encoder_layer_0_heads.png", heads_figure_inches(2))


def test_a_hugging_face_folder_gets_its_tokenizer_from_the_folder(tmp_path, capsys):
    # A BertModel checkpoint loads as a bare backbone, with no preprocessor attached.
    folder = tmp_path / "bert"
    shutil.copytree(REFERENCE / "bert", folder)
    assert kt(folder, "--text", TEXT, "--out", tmp_path / "out") == 2
    assert "has no preprocessor" in capsys.readouterr().err
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY))
    assert kt(folder, "--text", TEXT, "--layer", "0", "--out", tmp_path / "out") == 0
    assert_picture(tmp_path / "out" / "encoder_layer_0_heads.png", heads_figure_inches(4))


@pytest.mark.slow
def test_bad_input_is_a_one_line_error(tmp_path, tokenizer, capsys):
    text_model = saved(zoo.build("bert", task="classifier", num_classes=2,
                                 vocabulary_size=len(VOCABULARY)),
                       tmp_path / "bert.keras", tokenizer)
    vit = saved(zoo.build("vit", task="classifier", num_classes=2), tmp_path / "vit.keras")
    bare = saved(zoo.build("bert", task="classifier", num_classes=2,
                           vocabulary_size=len(VOCABULARY)),
                 tmp_path / "bare.keras", tokenizer=False)
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(tmp_path / "black.png")
    out = tmp_path / "out"

    cases = [
        ((text_model, "--image", tmp_path / "black.png"), "reads text (Bert): give --text"),
        ((vit, "--text", TEXT), "is an image model (ViT): give --image FILE"),
        ((vit, "--image", tmp_path / "notes.png"), "is not an image TensorFlow can decode"),
        ((vit, "--image", tmp_path / "missing.png"), "missing.png does not exist"),
        ((text_model, "--text", TEXT, "--layer", "2"),
         "Layer 2 is out of range: this model has 2 encoder layers (0 to 1"),
        ((text_model, "--text", TEXT, "--kind", "cross"), "no 'cross' attention"),
        ((text_model, "--text", TEXT, "--target", "x"), "--target is for encoder-decoder"),
        ((bare, "--text", TEXT), "has no preprocessor to turn text into token ids"),
    ]
    for args, message in cases:
        assert kt(*args, "--out", out) == 2, args
        error = capsys.readouterr().err
        assert error.startswith("kt attention: error:") and message in error, error
        assert error.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_text_goes_through_the_models_preprocessor_cut_to_its_real_tokens(tokenizer):
    from training.commands.attention import text_inputs

    model = zoo.build("bert", task="masked_lm", vocabulary_size=len(VOCABULARY))
    model.preprocessor = preprocessor_for(model, tokenizer, 16)
    x, labels = text_inputs(model, TEXT, None, "model")
    # The masked-LM preprocessor would mask at random: a plain BERT one is used instead.
    assert labels == {"encoder": ["[CLS]", "the", "quick", "brown", "fox", "jump", "##s",
                                  "[SEP]"]}
    assert x["token_ids"].tolist() == [[2, 5, 6, 7, 8, 9, 10, 3]]
    assert x["padding_mask"].tolist() == [[1] * 8]
    assert x["segment_ids"].tolist() == [[0] * 8]
