import numpy as np
import pytest

from stages.cli import UserError
from stages.data import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_images_and_labels


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_pair(tmp_path, images: np.ndarray, labels: np.ndarray, images_magic=IMAGES_MAGIC):
    (tmp_path / "images").write_bytes(idx_bytes(images_magic, images))
    (tmp_path / "labels").write_bytes(idx_bytes(LABELS_MAGIC, labels))
    return tmp_path / "images", tmp_path / "labels"


def test_parses_images_and_labels(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    labels = np.array([9, 0, 3])
    got_images, got_labels = read_images_and_labels(*write_pair(tmp_path, images, labels))
    assert got_images.shape == (3, 28, 28) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_real_file_header(dataset):
    import gzip

    labels = parse_idx(gzip.decompress((dataset / "t10k-labels-idx1-ubyte.gz").read_bytes()), LABELS_MAGIC)
    assert labels.shape == (10_000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_wrong_magic_is_named():
    data = idx_bytes(LABELS_MAGIC, np.zeros(5))
    with pytest.raises(UserError, match="magic number 2049, expected 2051"):
        parse_idx(data, IMAGES_MAGIC, "x")


def test_truncated_file_is_named():
    data = idx_bytes(IMAGES_MAGIC, np.zeros((2, 28, 28)))[:-10]
    with pytest.raises(UserError, match=r"x: 1574 bytes, but its header \(2, 28, 28\) needs 1584"):
        parse_idx(data, IMAGES_MAGIC, "x")


def test_empty_file_is_named():
    with pytest.raises(UserError, match="0 bytes is too short for an IDX header"):
        parse_idx(b"", LABELS_MAGIC, "x")


def test_wrong_image_size(tmp_path):
    paths = write_pair(tmp_path, np.zeros((2, 28, 27)), np.zeros(2))
    with pytest.raises(UserError, match="images are 28x27, expected 28x28"):
        read_images_and_labels(*paths)


def test_count_mismatch(tmp_path):
    paths = write_pair(tmp_path, np.zeros((3, 28, 28)), np.zeros(2))
    with pytest.raises(UserError, match="has 3 images but .* has 2 labels"):
        read_images_and_labels(*paths)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read .*nothing: No such file"):
        read_images_and_labels(tmp_path / "nothing", tmp_path / "labels")
