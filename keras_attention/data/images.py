"""Images for the vision transformer: Fashion-MNIST, generated shapes, tf.data.

`load_fashion_mnist` reads Zalando's four gzipped IDX files (the copies D2L
and Keras download), found or downloaded by `find_or_download` and checked
by sha256. `generate_shapes` is the embedded default: ten classes of simple
shapes drawn by code, deterministically from a seed, so the ViT tutorial and
tests run on an offline machine. `image_dataset` turns either into a
batched, prefetched `tf.data.Dataset` of uint8 images `(B, H, W, 1)`, with
D2L's `resize` option.
"""

import gzip
import math

import numpy as np

from keras_attention.data import _checks, download

__all__ = [
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_URL",
    "SHAPE_LABELS",
    "generate_shapes",
    "image_dataset",
    "load_fashion_mnist",
    "read_idx",
]

# The S3 *website* endpoint (what torchvision, and so D2L, downloads from)
# serves plain http only; the sha256 check below makes that safe.
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
# D2L's `FashionMNIST.text_labels`.
FASHION_MNIST_LABELS = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
SHAPE_LABELS = [
    "square",
    "circle",
    "triangle",
    "horizontal bar",
    "vertical bar",
    "cross",
    "diagonal",
    "ring",
    "two dots",
    "checker",
]

# IDX type codes (the third magic byte) -> numpy dtypes, big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def read_idx(path, expected_magic=None):
    """Reads an IDX file (gzipped when its name ends in `.gz`) into a numpy array.

    Args:
        path: str or path. The file.
        expected_magic: int. The magic number the file must start with, e.g.
            `2051` for images, `2049` for labels. Defaults to `None` (any
            valid IDX header).

    Returns:
        A numpy array of the file's dtype (uint8 for MNIST-style files) and
        shape (e.g. `(N, 28, 28)` for images, `(N,)` for labels).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is a folder, a truncated or damaged gzip file, or
            has a bad magic number, an unknown type code, or a data size that
            does not match the header.
    """
    path = _checks.check_file("path", path)
    if expected_magic is not None:
        expected_magic = _checks.check_int("expected_magic", expected_magic)
    gzipped = path.name.endswith(".gz")
    opener = gzip.open if gzipped else open
    with (
        download.reading(path, "a gzipped IDX file" if gzipped else "an IDX file"),
        opener(path, "rb") as f,
    ):
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file: only {len(raw)} bytes.")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path} has IDX magic number {magic}; expected {expected_magic}.")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path} has an invalid IDX magic number {magic} (0x{magic:08x}).")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes, got {len(raw)}.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(raw) - header != expected:
        raise ValueError(
            f"{path} holds {len(raw) - header} data bytes; its header {shape} needs {expected}."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST as numpy arrays (D2L's `FashionMNIST`, Keras' `fashion_mnist.load_data`).

    The four files are searched for as `fashion-mnist/<file>` in `data_dir`,
    `$KERAS_ATTENTION_DATA`, `shared/data` beside the checkout and
    `~/.keras/datasets`, else downloaded from Zalando's upstream URL and
    checked by sha256 (see `keras_attention.data.find_or_download`).

    Args:
        data_dir: str or path. A folder searched first, and the download
            destination. Defaults to `None`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images `(60000, 28, 28)`
        and `(10000, 28, 28)`, uint8 labels `(60000,)` and `(10000,)` in
        0..9, named by `FASHION_MNIST_LABELS`.
    """
    arrays, paths = {}, {}
    for name, sha256 in FASHION_MNIST_FILES.items():
        paths[name] = download.find_or_download(
            f"fashion-mnist/{name}", url=FASHION_MNIST_URL + name, sha256=sha256, data_dir=data_dir
        )
        arrays[name] = read_idx(paths[name], IMAGES_MAGIC if "images" in name else LABELS_MAGIC)
    splits = []
    for prefix in ("train", "t10k"):
        x_name, y_name = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
        x, y = arrays[x_name], arrays[y_name]
        if len(x) != len(y):
            raise ValueError(
                f"{paths[x_name]} holds {len(x)} images but {paths[y_name]} holds {len(y)} "
                f"labels; one of them is not the right file. Delete or replace it."
            )
        splits.append((x, y))
    return tuple(splits)


# --- generated shapes -------------------------------------------------------
# Each painter returns a boolean mask (img_size, img_size) of a shape whose
# bounding box has side `size` and top-left corner (top, left).


def _square(yy, xx, top, left, size, rng):
    return (yy >= top) & (yy < top + size) & (xx >= left) & (xx < left + size)


def _circle(yy, xx, top, left, size, rng):
    r = size / 2
    return (yy - (top + r - 0.5)) ** 2 + (xx - (left + r - 0.5)) ** 2 <= r**2


def _triangle(yy, xx, top, left, size, rng):
    # Apex at the top centre, base along the bottom edge.
    dy = (yy - top + 0.5) / size  # 0 at the apex, 1 at the base
    dx = np.abs(xx - (left + size / 2 - 0.5)) / size
    return (dy >= 0) & (dy <= 1) & (dx <= dy / 2)


def _bar(yy, xx, top, left, size, rng, horizontal):
    thick = max(2, size // 4)
    offset = (size - thick) // 2
    if horizontal:
        return (
            (yy >= top + offset) & (yy < top + offset + thick) & (xx >= left) & (xx < left + size)
        )
    return (xx >= left + offset) & (xx < left + offset + thick) & (yy >= top) & (yy < top + size)


def _hbar(yy, xx, top, left, size, rng):
    return _bar(yy, xx, top, left, size, rng, horizontal=True)


def _vbar(yy, xx, top, left, size, rng):
    return _bar(yy, xx, top, left, size, rng, horizontal=False)


def _cross(yy, xx, top, left, size, rng):
    return _hbar(yy, xx, top, left, size, rng) | _vbar(yy, xx, top, left, size, rng)


def _diagonal(yy, xx, top, left, size, rng):
    u, v = yy - top, xx - left
    if rng.random() < 0.5:
        v = size - 1 - v  # "/" instead of "\"
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    return inside & (np.abs(u - v) <= max(1, size // 8))


def _ring(yy, xx, top, left, size, rng):
    r = size / 2
    d2 = (yy - (top + r - 0.5)) ** 2 + (xx - (left + r - 0.5)) ** 2
    return (d2 <= r**2) & (d2 >= (r - max(2, size / 6)) ** 2)


def _two_dots(yy, xx, top, left, size, rng):
    r = max(1.5, size / 6)
    if rng.random() < 0.5:  # side by side, else one above the other
        centres = [(top + size / 2, left + r), (top + size / 2, left + size - r)]
    else:
        centres = [(top + r, left + size / 2), (top + size - r, left + size / 2)]
    mask = np.zeros(yy.shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy + 0.5) ** 2 + (xx - cx + 0.5) ** 2 <= r**2
    return mask


def _checker(yy, xx, top, left, size, rng):
    cell = max(2, size // 4)
    parity = ((yy - top) // cell + (xx - left) // cell) % 2 == 0
    return _square(yy, xx, top, left, size, rng) & parity


_PAINTERS = [
    _square,
    _circle,
    _triangle,
    _hbar,
    _vbar,
    _cross,
    _diagonal,
    _ring,
    _two_dots,
    _checker,
]


def generate_shapes(num_examples, img_size=28, seed=0):
    """Generated grayscale images of ten simple shapes: the offline stand-in for Fashion-MNIST.

    Each image holds one shape (`SHAPE_LABELS`: square, circle, triangle,
    horizontal bar, vertical bar, cross, diagonal, ring, two dots, checker)
    of random size, position and brightness on a noisy dark background.
    Classes are balanced (example `i` has class `i % 10` before shuffling).
    The same `seed` gives the same arrays.

    Args:
        num_examples: int. Number of images.
        img_size: int. Height and width in pixels, at least 12. Defaults to `28`.
        seed: int. Random seed. Defaults to `0`.

    Returns:
        `(images, labels)`: uint8 `(num_examples, img_size, img_size)` and
        int32 `(num_examples,)` in 0..9.
    """
    num_examples = _checks.check_non_negative_int("num_examples", num_examples)
    seed = _checks.check_int("seed", seed)
    if isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer)) or img_size < 12:
        raise ValueError(f"`img_size` must be an int of at least 12; got img_size={img_size!r}.")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % len(_PAINTERS)).astype(np.int32)
    yy, xx = np.mgrid[0:img_size, 0:img_size]
    images = np.empty((num_examples, img_size, img_size), np.uint8)
    min_size, max_size = max(6, int(img_size * 0.4)), int(img_size * 0.8)
    for i, label in enumerate(labels):
        size = int(rng.integers(min_size, max_size + 1))
        top, left = (int(v) for v in rng.integers(0, img_size - size + 1, size=2))
        mask = _PAINTERS[label](yy, xx, top, left, size, rng)
        background = rng.uniform(0, 40)
        foreground = rng.uniform(150, 255)
        image = np.where(mask, foreground, background) + rng.normal(0, 12, (img_size, img_size))
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images, labels


def image_dataset(
    images, labels, batch_size, shuffle=True, seed=0, resize=None, drop_remainder=False
):
    """A batched, prefetched `tf.data.Dataset` of `(images, labels)`.

    Args:
        images: uint8 array `(N, H, W)` or `(N, H, W, C)`.
        labels: int array `(N,)`.
        batch_size: int.
        shuffle: bool. Shuffle all examples, anew each epoch. Defaults to `True`.
        seed: int. Shuffle seed. Defaults to `0`.
        resize: int or `(height, width)`. Resize in the pipeline (bilinear,
            as D2L's `transforms.Resize`), e.g. `96` for D2L's ViT. Defaults
            to `None` (keep the size).
        drop_remainder: bool. Drop a last partial batch. Defaults to `False`.

    Returns:
        A dataset of uint8 images `(B, H, W, C)` (`C = 1` for `(N, H, W)`
        input) and int32 labels `(B,)`.
    """
    import tensorflow as tf

    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            "`images` must be uint8 of shape (N, H, W) or (N, H, W, C); "
            f"got dtype {images.dtype}, shape {images.shape}."
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"`labels` must have shape ({len(images)},), one per image; got shape {labels.shape}."
        )
    if not len(images):
        raise ValueError("`images` holds no examples; an empty data set cannot be batched.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be integers (class ids); got dtype {labels.dtype}.")
    if labels.min() < 0:
        raise ValueError(f"`labels` must be class ids >= 0; got {labels.min()}.")
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    _checks.check_bool("shuffle", shuffle)
    seed = _checks.check_int("seed", seed)
    _checks.check_bool("drop_remainder", drop_remainder)
    if images.ndim == 3:
        images = images[..., None]
    if resize is not None:
        size = (resize, resize) if isinstance(resize, (int, np.integer)) else tuple(resize)
        bad = [
            s for s in size if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
        ]
        if len(size) != 2 or bad:
            raise ValueError(
                f"`resize` must be a positive int or (height, width); got resize={resize!r}."
            )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if resize is not None:

        def _resize(x, y):
            x = tf.image.resize(tf.cast(x, tf.float32), size, method="bilinear")  # (B, h, w, C)
            return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8), y

        dataset = dataset.map(_resize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
