"""Fashion-MNIST IDX parsing, generated shapes, the image tf.data pipeline."""

import gzip

import numpy as np
import pytest

from keras_attention.data import download, images
from keras_attention.data.images import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_LABELS,
    SHAPE_LABELS,
    generate_shapes,
    image_dataset,
    load_fashion_mnist,
    read_idx,
)


def _write_idx(path, array, magic=None, extra=b""):
    """Writes `array` (uint8) as an IDX file, gzipped when `path` ends in .gz."""
    array = np.asarray(array, np.uint8)
    magic = (0x0800 + array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes() + extra)
    return path


def _fake_fashion_mnist(folder, num_train=20, num_test=10):
    rng = np.random.default_rng(0)
    sub = folder / "fashion-mnist"
    sub.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(sub / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(sub / f"{prefix}-labels-idx1-ubyte.gz", y)
        arrays[prefix] = (x, y)
    return arrays


# --- IDX parsing on small files written here --------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips_images_and_labels(tmp_path, suffix):
    x = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    y = np.array([7, 0, 9], np.uint8)
    got_x = read_idx(_write_idx(tmp_path / f"x{suffix}", x), expected_magic=2051)
    got_y = read_idx(_write_idx(tmp_path / f"y{suffix}", y), expected_magic=2049)
    assert got_x.dtype == np.uint8 and got_x.shape == (3, 4, 5)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_read_idx_rejects_wrong_magic_number(tmp_path):
    path = _write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))  # magic 2049
    with pytest.raises(ValueError, match="magic number 2049; expected 2051"):
        read_idx(path, expected_magic=2051)


@pytest.mark.parametrize("magic", [0x01000803, 0x00000703, 0x00000800])
def test_read_idx_rejects_invalid_magic_number(tmp_path, magic):
    path = _write_idx(tmp_path / "bad", np.zeros((2, 2, 2), np.uint8), magic=magic)
    with pytest.raises(ValueError, match="invalid IDX magic number"):
        read_idx(path)


@pytest.mark.parametrize("extra,cut", [(b"\x00", 0), (b"", 3)])
def test_read_idx_rejects_size_mismatch(tmp_path, extra, cut):
    path = _write_idx(tmp_path / "bad", np.zeros((2, 3, 3), np.uint8), extra=extra)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(ValueError, match="data bytes; its header"):
        read_idx(path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "truncated or not a gzipped IDX file .*EOFError"),
        (
            lambda data: b"not gzip at all" + data,
            "truncated or not a gzipped IDX file .*BadGzipFile",
        ),
        (
            lambda data: data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:],
            "truncated or not a gzipped IDX file",
        ),
    ],
    ids=["truncated", "not-gzip", "corrupt-deflate"],
)
def test_read_idx_names_a_damaged_gzip_file(tmp_path, damage, message):
    rng = np.random.default_rng(0)
    good = _write_idx(tmp_path / "good.gz", rng.integers(0, 256, (50, 28, 28), dtype=np.uint8))
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(ValueError, match=f"Could not read {bad}: it is {message}"):
        read_idx(bad)


def test_read_idx_header_that_overflows_int64_is_a_size_mismatch(tmp_path):
    header = (0x0804).to_bytes(4, "big") + (65536).to_bytes(4, "big") * 4  # 2**64 elements
    (tmp_path / "huge").write_bytes(header)
    with pytest.raises(ValueError, match="holds 0 data bytes; its header"):
        read_idx(tmp_path / "huge")


def test_read_idx_names_bad_paths_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing.gz'} does not exist"):
        read_idx(tmp_path / "missing.gz")
    with pytest.raises(ValueError, match="`path` must be a file; got path=.*which is a folder"):
        read_idx(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'} is not an IDX file: only 0 bytes"):
        read_idx(tmp_path / "empty")
    path = _write_idx(tmp_path / "y", np.zeros(3, np.uint8))
    with pytest.raises(
        ValueError, match="`expected_magic` must be an integer; got expected_magic='2049'"
    ):
        read_idx(path, expected_magic="2049")


def test_label_count_that_does_not_match_the_images_names_both_files(tmp_path, monkeypatch):
    _fake_fashion_mnist(tmp_path)
    labels = tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz"
    _write_idx(labels, np.zeros(19, np.uint8))  # 20 images
    _trust(monkeypatch, tmp_path)
    images_file = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    with pytest.raises(
        ValueError, match=f"{images_file} holds 20 images but {labels} holds 19 labels"
    ):
        load_fashion_mnist(data_dir=tmp_path)


def test_read_idx_rejects_tiny_file(tmp_path):
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "tiny")


def _trust(monkeypatch, folder):
    """Makes the files under `folder/fashion-mnist` the expected ones (their sha256s)."""
    sums = {
        name: download.sha256_of(folder / "fashion-mnist" / name) for name in FASHION_MNIST_FILES
    }
    monkeypatch.setattr(images, "FASHION_MNIST_FILES", sums)


def test_load_fashion_mnist_reads_from_data_dir(tmp_path, monkeypatch):
    arrays = _fake_fashion_mnist(tmp_path)
    _trust(monkeypatch, tmp_path)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir=tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, arrays["train"][1])
    assert x_test.shape == (10, 28, 28) and y_test.shape == (10,)


def test_load_fashion_mnist_downloads_checked_from_upstream_url(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    _fake_fashion_mnist(upstream)
    monkeypatch.delenv(download.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(download, "shared_data_dir", lambda: tmp_path / "shared")
    monkeypatch.setattr(images, "FASHION_MNIST_URL", (upstream / "fashion-mnist").as_uri() + "/")
    # With the real checksums the fake files are refused and nothing is kept.
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_fashion_mnist()
    assert not list((tmp_path / "keras_home").rglob("*.gz"))
    _trust(monkeypatch, upstream)
    (x_train, _), _ = load_fashion_mnist()
    assert x_train.shape == (20, 28, 28)
    assert (
        tmp_path / "keras_home" / "datasets" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    ).is_file()


def test_load_fashion_mnist_offline_names_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.delenv(download.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(download, "shared_data_dir", lambda: tmp_path / "shared")
    monkeypatch.setattr(images, "FASHION_MNIST_URL", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(FileNotFoundError, match="fashion-mnist"):
        load_fashion_mnist()


def test_files_found_on_disk_are_checked_by_sha256(tmp_path):
    _fake_fashion_mnist(tmp_path)  # not Zalando's files
    name = next(iter(FASHION_MNIST_FILES))
    path = tmp_path / "fashion-mnist" / name
    with pytest.raises(
        ValueError,
        match=f"sha256 mismatch for data file {path}: expected {FASHION_MNIST_FILES[name]}",
    ):
        load_fashion_mnist(data_dir=tmp_path)


# --- the real files, when shared/data holds them ----------------------------

REAL = download.shared_data_dir() / "fashion-mnist" / "train-images-idx3-ubyte.gz"


@pytest.mark.skipif(not REAL.is_file(), reason="no shared/data/fashion-mnist")
def test_real_fashion_mnist_shapes_classes_and_mean():
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir=REAL.parent.parent)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert x_train.mean() / 255 == pytest.approx(0.2860, abs=5e-5)
    assert x_test.mean() / 255 == pytest.approx(0.2868, abs=5e-5)


def test_labels_are_d2ls():
    assert FASHION_MNIST_LABELS[0] == "t-shirt" and FASHION_MNIST_LABELS[-1] == "ankle boot"
    assert len(FASHION_MNIST_LABELS) == len(SHAPE_LABELS) == 10
    assert len(set(SHAPE_LABELS)) == 10


# --- generated shapes ---------------------------------------------------------


def test_generate_shapes_is_deterministic_per_seed():
    x1, y1 = generate_shapes(60, seed=3)
    x2, y2 = generate_shapes(60, seed=3)
    x3, _ = generate_shapes(60, seed=4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


@pytest.mark.parametrize("img_size", [28, 16])
def test_generate_shapes_covers_all_classes(img_size):
    x, y = generate_shapes(200, img_size=img_size)
    assert x.shape == (200, img_size, img_size) and x.dtype == np.uint8
    assert y.shape == (200,) and y.min() >= 0 and y.max() < len(SHAPE_LABELS)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [20] * 10)
    # A bright shape on a dark background in every image.
    assert (x.max(axis=(1, 2)) > 120).all() and (x.min(axis=(1, 2)) < 60).all()


def test_generate_shapes_class_means_differ():
    x, y = generate_shapes(1000, seed=1)
    means = np.stack([(x[y == c] > 100).mean(0) for c in range(10)])  # (10, 28, 28)
    distances = np.abs(means[:, None] - means[None]).sum(axis=(2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 5.0


def test_generate_shapes_are_learnable_by_nearest_neighbour():
    x, y = generate_shapes(800, seed=0)
    xt, yt = generate_shapes(100, seed=1)
    a, b = x.reshape(800, -1) > 100, xt.reshape(100, -1) > 100
    # 1-NN on thresholded pixels already beats chance (0.1) by far.
    dist = (a[None].astype(np.int16) != b[:, None].astype(np.int16)).sum(-1)
    assert (y[dist.argmin(1)] == yt).mean() > 0.3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_examples=-1), "num_examples"),
        (dict(num_examples=4, img_size=8), "img_size"),
        (
            dict(num_examples=2.0),
            "`num_examples` must be a non-negative integer; got num_examples=2.0",
        ),
        (
            dict(num_examples=True),
            "`num_examples` must be a non-negative integer; got num_examples=True",
        ),
        (dict(num_examples=4, img_size=28.0), "`img_size` must be an int of at least 12"),
        (dict(num_examples=4, seed="a"), "`seed` must be an integer; got seed='a'"),
    ],
)
def test_generate_shapes_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_shapes(**kwargs)


def test_generate_shapes_zero_examples():
    x, y = generate_shapes(0)
    assert x.shape == (0, 28, 28) and y.shape == (0,)


# --- tf.data pipeline -------------------------------------------------------


def test_image_dataset_batches_uint8_with_channel():
    x, y = generate_shapes(10)
    batches = list(image_dataset(x, y, batch_size=4, shuffle=False))
    assert [tuple(b[0].shape) for b in batches] == [(4, 28, 28, 1), (4, 28, 28, 1), (2, 28, 28, 1)]
    assert batches[0][0].dtype.name == "uint8" and batches[0][1].dtype.name == "int32"
    np.testing.assert_array_equal(batches[0][0].numpy()[..., 0], x[:4])
    np.testing.assert_array_equal(batches[-1][1].numpy(), y[8:])


def test_image_dataset_shuffles_deterministically_and_keeps_pairs():
    x, y = generate_shapes(12)
    first = [b for b in image_dataset(x, y, 12, shuffle=True, seed=5)][0]
    again = [b for b in image_dataset(x, y, 12, shuffle=True, seed=5)][0]
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    order = [
        int(np.flatnonzero((x == img[..., 0]).all(axis=(1, 2)))[0]) for img in first[0].numpy()
    ]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    np.testing.assert_array_equal(y[order], first[1].numpy())


@pytest.mark.parametrize("resize,shape", [(40, (40, 40)), ((20, 32), (20, 32))])
def test_image_dataset_resizes(resize, shape):
    x, y = generate_shapes(3)
    xb, _ = next(iter(image_dataset(x, y, 3, shuffle=False, resize=resize)))
    assert tuple(xb.shape) == (3, *shape, 1) and xb.dtype.name == "uint8"


def test_image_dataset_resize_to_same_size_is_identity():
    x, y = generate_shapes(3)
    xb, _ = next(iter(image_dataset(x, y, 3, shuffle=False, resize=28)))
    np.testing.assert_array_equal(xb.numpy()[..., 0], x)


def test_image_dataset_drop_remainder_and_rgb():
    x = np.zeros((5, 6, 7, 3), np.uint8)
    batches = list(image_dataset(x, np.zeros(5, int), 2, drop_remainder=True))
    assert [tuple(b[0].shape) for b in batches] == [(2, 6, 7, 3)] * 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(images=np.zeros((2, 4, 4), np.float32)), "images"),
        (dict(images=np.zeros((2, 4), np.uint8)), "images"),
        (dict(labels=np.zeros(3)), "labels"),
        (dict(batch_size=0), "batch_size"),
        (dict(resize=(4,)), "resize"),
        (dict(resize=0), "resize"),
        (
            dict(labels=np.array([0.7, 1.2])),
            r"`labels` must be integers \(class ids\); got dtype float64",
        ),
        (dict(labels=np.array([0, -1])), r"`labels` must be class ids >= 0; got -1"),
        (
            dict(images=np.zeros((0, 4, 4), np.uint8), labels=np.zeros(0, int)),
            "`images` holds no examples",
        ),
        (dict(batch_size=True), "`batch_size` must be a positive integer; got batch_size=True"),
        (dict(shuffle="no"), "`shuffle` must be True or False; got shuffle='no'"),
        (dict(seed=0.5), "`seed` must be an integer; got seed=0.5"),
        (dict(drop_remainder=None), "`drop_remainder` must be True or False"),
    ],
)
def test_image_dataset_rejects_bad_arguments(kwargs, match):
    args = dict(images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2, np.int32), batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        image_dataset(**args)


@pytest.mark.skipif(not REAL.is_file(), reason="no shared/data/fashion-mnist")
def test_a_relabelled_copy_of_fashion_mnist_is_refused(tmp_path):
    import shutil

    copy = tmp_path / "fashion-mnist"
    copy.mkdir()
    for name in FASHION_MNIST_FILES:
        shutil.copyfile(REAL.parent / name, copy / name)
    (_, y_test_real) = load_fashion_mnist(data_dir=tmp_path)[1]
    labels = read_idx(copy / "t10k-labels-idx1-ubyte.gz")
    labels[0] = (labels[0] + 1) % 10  # one relabelled example, a valid gzipped IDX file
    _write_idx(copy / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(
        ValueError, match="sha256 mismatch for data file .*t10k-labels-idx1-ubyte.gz"
    ):
        load_fashion_mnist(data_dir=tmp_path)
    assert y_test_real.shape == (10000,)
