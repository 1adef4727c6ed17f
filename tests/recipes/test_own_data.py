"""The user's own files: sentence pairs, text, image folders; from the command and from Python."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_attention
from keras_attention import cli, data, recipes

TINY_TRANSFORMER = [
    "--num-hiddens",
    "16",
    "--ffn-num-hiddens",
    "32",
    "--num-heads",
    "2",
    "--num-blks",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--verbose",
    "0",
]


def _pairs(n=120, seed=0):
    return data.generate_dates(n, seed=seed)


@pytest.fixture(scope="module")
def pairs_tsv(tmp_path_factory):
    path = tmp_path_factory.mktemp("own") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in _pairs()), encoding="utf-8")
    return path


def test_train_translation_on_a_tsv_file(pairs_tsv, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "translation",
                "--data",
                str(pairs_tsv),
                *TINY_TRANSFORMER,
                "--num-eval",
                "5",
                "--out",
                str(out),
                "--export",
                str(tmp_path / "sm"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "120 pairs, 108 for training and 12 held out" in printed
    assert "held-out: exact match" in printed
    run = keras_attention.load_run(out)
    assert run.model.get_layer("encoder_block_0").num_hiddens == 16
    assert len(run.translate(["march 3 , 1994", "may 5 , 2001"])) == 2
    assert json.loads((out / "run.json").read_text())["options"]["data"] == str(pairs_tsv)
    assert keras_attention.load_run(tmp_path / "sm").translate("march 3 , 1994") == run.translate(
        "march 3 , 1994"
    )


@pytest.mark.parametrize("tokenizer", ["char", "wordpiece"])
def test_csv_with_named_columns_and_other_tokenizers(tmp_path, tokenizer):
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"english": [s for s, _ in _pairs(60)], "iso": [t for _, t in _pairs(60)]}).to_csv(
        path, index=False
    )
    task = data.load_pairs_file(
        path, tokenizer=tokenizer, vocab_size=200, source_column="english", target_column="iso"
    )
    assert len(task.train_pairs) + len(task.val_pairs) == 60 and task.val_pairs
    assert not {s for s, _ in task.val_pairs} & {s for s, _ in task.train_pairs}
    features, labels = next(iter(task.train_dataset(8)))  # a tf.data pipeline for fit
    assert features["src_ids"].shape == (8, task.num_steps) and labels.dtype == tf.int32
    with pytest.raises(ValueError, match=r"must have a header row with the columns 'source'"):
        data.load_pairs_file(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"one\tun\ntwo\tdeux\n\xff\xfe\tbad\n", r"pairs.tsv is not UTF-8: line 3"),
        (b"one\tun\ntwo deux\n", r"pairs.tsv, line 2: expected source<TAB>target"),
        (b"\n\n", r"pairs.tsv holds no sentence pairs"),
        (b"one\tun\n", r"holds 1 sentence pair; training and a held-out score need at least 2"),
    ],
)
def test_bad_pair_files_name_the_line(tmp_path, content, match):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        data.load_pairs_file(path)
    with pytest.raises(SystemExit, match=f"error: .*{match[:20]}"):
        cli.main(["train", "translation", "--data", str(path), "--out", str(tmp_path / "r")])


def test_fewer_training_pairs_than_a_batch_is_named_before_training(tmp_path):
    """Full batches only: 1 training pair and batch_size 4 gave an empty epoch, then
    "missing 'loss'" after the (untrained) run was written."""
    path = tmp_path / "pairs.tsv"
    path.write_text("hi\tsalut\nbye\tau revoir\n", encoding="utf-8")
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as info:
        cli.main(
            ["train", "translation", "--data", str(path), *TINY_TRANSFORMER, "--out", str(out)]
        )
    assert str(info.value) == (
        "error: 1 pairs, fewer than batch_size=16 with drop_remainder=True: no batch. "
        "Lower `batch_size` or pass more data."
    )
    assert not (out / "model.keras").exists()
    task = data.load_pairs_file(path)
    with pytest.raises(ValueError, match="fewer than batch_size=2"):
        task.train_dataset(2, drop_remainder=True)
    assert len(list(task.train_dataset(2))) == 1


def test_fra_txt_layout_with_attribution_column_is_read(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution\nHi.\tSalut !\tCC-BY\n")
    assert data.read_pairs_file(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_missing_data_is_a_usage_error(tmp_path, capsys):
    for kind in ("translation", "vision", "lm"):
        with pytest.raises(SystemExit) as info:
            cli.main(["train", kind, "--data", str(tmp_path / "nope.tsv")])
        assert info.value.code == 2
        assert "nope.tsv' (no such file or folder)" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="`data` must be one of dates, fra-eng"):
        recipes.translation_data(str(tmp_path / "nope.tsv"))


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("texts")
    corpus = data.generate_corpus(160, seed=1).split("\n")
    (folder / "a.txt").write_text("\n".join(corpus[:80]), encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("\n".join(corpus[80:]), encoding="utf-8")
    return folder


def test_train_lm_on_a_folder_and_on_files(text_folder, tmp_path, capsys):
    out = tmp_path / "lm"
    argv = [
        "train",
        "lm",
        "--num-hiddens",
        "16",
        "--ffn-num-hiddens",
        "32",
        "--num-heads",
        "2",
        "--num-blks",
        "1",
        "--seq-len",
        "16",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--verbose",
        "0",
        "--max-new-tokens",
        "4",
    ]
    assert cli.main([*argv, "--data", str(text_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(90/10 split of the text)" in printed and "validation perplexity" in printed
    history = pd.read_csv(out / "history.csv")
    assert {"val_loss", "val_perplexity", "perplexity"} <= set(history.columns)
    np.testing.assert_allclose(history["val_perplexity"], np.exp(history["val_loss"]), rtol=1e-5)
    # A packed layout: the model has no padding mask, so attention is causal only.
    assert keras_attention.load_run(out).model.get_layer("token_embedding").pad_id is None
    files = [str(text_folder / "a.txt"), str(text_folder / "sub" / "b.txt")]
    assert (
        cli.main(
            [
                *argv,
                "--epochs",
                "1",
                "--data",
                *files,
                "--tokenizer",
                "wordpiece",
                "--vocab-size",
                "80",
                "--out",
                str(tmp_path / "lm2"),
            ]
        )
        == 0
    )


def test_lm_text_errors(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text: byte 3 \(line 1\)"):
        recipes.lm_data(str(tmp_path / "latin1.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .txt files"):
        recipes.lm_data(str(tmp_path / "empty"))
    (tmp_path / "short.txt").write_text("a tiny text\n" * 3)
    with pytest.raises(ValueError, match=r"fewer than one window of seq_len \+ 1 = 65"):
        recipes.lm_data(str(tmp_path / "short.txt"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of PNGs, grayscale and RGB, of several sizes."""
    folder = tmp_path_factory.mktemp("images")
    images, labels = data.generate_shapes(40, seed=2)
    for i, (image, label) in enumerate(zip(images, labels)):
        name = "round" if label % 2 else "angular"
        (folder / name).mkdir(exist_ok=True)
        pixels = image[..., None] if i % 3 else np.repeat(image[..., None], 3, axis=-1)
        if i % 4 == 0:
            pixels = tf.image.resize(pixels, (40, 36)).numpy().astype("uint8")
        tf.io.write_file(str(folder / name / f"{i}.png"), tf.io.encode_png(pixels))
    return folder


def test_train_vision_on_a_folder(image_folder, tmp_path, capsys):
    out, export = tmp_path / "vit", tmp_path / "vit_sm"
    assert (
        cli.main(
            [
                "train",
                "vision",
                "--data",
                str(image_folder),
                "--epochs",
                "1",
                "--num-hiddens",
                "16",
                "--mlp-num-hiddens",
                "32",
                "--num-blks",
                "1",
                "--batch-size",
                "8",
                "--verbose",
                "0",
                "--out",
                str(out),
                "--export",
                str(export),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 classes, 3 channel(s)" in printed
    png = next(image_folder.glob("round/*.png"))
    assert cli.main(["classify", str(export), str(png), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{png}: ") and "round" in line and "angular" in line
    assert keras_attention.load_run(out).class_names == ["angular", "round"]


def test_vision_data_from_python(image_folder):
    prepared = recipes.vision_data(str(image_folder), batch_size=4, img_size=24)
    images, labels = next(iter(prepared.train))
    assert images.shape[1:] == (24, 24, 3) and prepared.num_train + prepared.num_test == 40
    assert prepared.class_names == ["angular", "round"]
    with pytest.raises(ValueError, match="must hold one sub-folder of images per class"):
        recipes.vision_data(str(image_folder / "round"))


def test_a_corrupt_image_in_a_folder_is_named(image_folder, tmp_path):
    """Only the first images of a folder were opened up front (the first RGB one stopped
    the look): a broken file further on came out of tf.data as an InvalidArgumentError."""
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    (folder / "round" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    with pytest.raises(ValueError, match=r"Cannot read image '.*zz_broken.png': Invalid PNG"):
        recipes.vision_data(str(folder), batch_size=4, img_size=24)
    with pytest.raises(SystemExit, match=r"^error: Cannot read image '.*zz_broken.png'"):
        cli.main(["train", "vision", "--data", str(folder), "--out", str(tmp_path / "r")])
