"""The prepare stage's core; a broken data/raw: tests/reliability/test_data_faults.py."""

import gzip

import numpy as np
import pytest

from stages.data import (
    CLASS_NAMES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    parse_idx,
    read_images_and_labels,
    scale_and_flatten,
)
from stages.exits import UserError
from stages.prepare import describe


def test_reads_idx_files_and_names_a_truncated_one_with_its_size(tmp_path, dataset):
    images, labels = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256, np.array([9, 0, 3])
    for name, magic, array in (("images", IMAGES_MAGIC, images), ("labels", LABELS_MAGIC, labels)):
        header = b"".join(n.to_bytes(4, "big") for n in (magic, *array.shape))
        (tmp_path / name).write_bytes(header + array.astype(np.uint8).tobytes())
    got_images, got_labels = read_images_and_labels(tmp_path / "images", tmp_path / "labels")
    assert got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(UserError, match=r"^x: 2358 bytes, but its header \(3, 28, 28\) needs 2368"):
        parse_idx((tmp_path / "images").read_bytes()[:-10], IMAGES_MAGIC, "x")
    idx = gzip.decompress((dataset / "t10k-labels-idx1-ubyte.gz").read_bytes())
    real = parse_idx(idx, LABELS_MAGIC)
    assert np.bincount(real).tolist() == [1000] * 10


def test_scales_to_unit_interval_as_float32_and_flattens_row_major():
    images = (np.arange(3 * 784).reshape(3, 28, 28) % 256).astype(np.uint8)  # every value 0 to 255
    x = scale_and_flatten(images)
    assert x.shape == (3, 784) and x.dtype == np.float32 and (x.min(), x.max()) == (0.0, 1.0)
    np.testing.assert_allclose(x * 255, images.reshape(3, -1), atol=1e-4)  # (r, c) at 28 * r + c


def test_describe_counts_every_class_by_name():
    description = describe(np.array([0, 0, 9, 3], np.uint8), np.zeros((4, 28, 28), np.uint8))
    assert (description["samples"], description["height"], description["width"]) == (4, 28, 28)
    counts = dict.fromkeys(CLASS_NAMES, 0) | {"T-shirt/top": 2, "Dress": 1, "Ankle boot": 1}
    assert list(description["class_counts"].items()) == list(counts.items())  # in classes' order
