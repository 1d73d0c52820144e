import numpy as np

from stages.data import CLASS_NAMES
from stages.prepare import describe, scale_and_flatten


def test_scales_to_unit_interval_as_float32_and_flattens():
    images = np.array([np.full((28, 28), 0), np.full((28, 28), 255), np.full((28, 28), 51)], np.uint8)
    x = scale_and_flatten(images)
    assert x.shape == (3, 784)
    assert x.dtype == np.float32
    assert x[0].max() == 0.0 and x[1].min() == 1.0
    np.testing.assert_allclose(x[2], 0.2, rtol=1e-7)


def test_flattening_keeps_row_major_pixel_order():
    images = np.arange(2 * 784, dtype=np.int64).reshape(2, 28, 28) % 256
    x = scale_and_flatten(images.astype(np.uint8))
    np.testing.assert_allclose(x[1, 28 * 3 + 5] * 255, images[1, 3, 5], atol=1e-4)


def test_describe_counts_every_class_by_name():
    labels = np.array([0, 0, 9, 3], np.uint8)
    description = describe(labels, np.zeros((4, 28, 28), np.uint8))
    assert description["samples"] == 4 and (description["height"], description["width"]) == (28, 28)
    assert list(description["class_counts"]) == list(CLASS_NAMES)
    assert description["class_counts"]["T-shirt/top"] == 2
    assert description["class_counts"]["Ankle boot"] == 1
    assert description["class_counts"]["Bag"] == 0
