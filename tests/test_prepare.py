"""The prepare stage's core; a broken data/raw as the stage sees it: tests/reliability/test_data_faults.py."""

import gzip

import numpy as np
import pytest

from stages.cli import UserError
from stages.data import CLASS_NAMES, IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_images_and_labels
from stages.prepare import describe, scale_and_flatten


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_reads_idx_files_and_names_a_truncated_one_with_its_size(tmp_path, dataset):
    images, labels = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256, np.array([9, 0, 3])
    (tmp_path / "images").write_bytes(idx_bytes(IMAGES_MAGIC, images))
    (tmp_path / "labels").write_bytes(idx_bytes(LABELS_MAGIC, labels))
    got_images, got_labels = read_images_and_labels(tmp_path / "images", tmp_path / "labels")
    assert got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    real = parse_idx(gzip.decompress((dataset / "t10k-labels-idx1-ubyte.gz").read_bytes()), LABELS_MAGIC)
    assert np.bincount(real).tolist() == [1000] * 10
    truncated = idx_bytes(IMAGES_MAGIC, np.zeros((2, 28, 28)))[:-10]
    with pytest.raises(UserError, match=r"^x: 1574 bytes, but its header \(2, 28, 28\) needs 1584: the"):
        parse_idx(truncated, IMAGES_MAGIC, "x")


def test_scales_to_unit_interval_as_float32_and_flattens_row_major():
    images = (np.arange(3 * 784).reshape(3, 28, 28) % 256).astype(np.uint8)
    images[0], images[1] = 0, 255
    x = scale_and_flatten(images)
    assert x.shape == (3, 784) and x.dtype == np.float32
    assert x[0].max() == 0.0 and x[1].min() == 1.0
    np.testing.assert_allclose(x[2] * 255, images[2].reshape(-1), atol=1e-4)  # pixel (r, c) at 28 * r + c


def test_describe_counts_every_class_by_name():
    description = describe(np.array([0, 0, 9, 3], np.uint8), np.zeros((4, 28, 28), np.uint8))
    assert (description["samples"], description["height"], description["width"]) == (4, 28, 28)
    counts = dict.fromkeys(CLASS_NAMES, 0) | {"T-shirt/top": 2, "Dress": 1, "Ankle boot": 1}
    assert list(description["class_counts"].items()) == list(counts.items())  # in the classes' order
