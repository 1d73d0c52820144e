"""Data faults: one of the four IDX files of a small valid set in data/raw broken.

Read by the prepare stage's entry point in this process: nothing written, no temporary."""

import math

import numpy as np
import pytest

from scripts.toolkit import copy_project, error_line, snapshot, temporaries
from stages.prepare import main as prepare

FAULT_CLASS = "data: a broken IDX file"
USER_SEES = "`error: data/raw/<file>: <what is wrong>` (magic number, size, header, counts), exit 1"
N = 600  # max_samples must be >= 500
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx(magic: int, *shape: int) -> bytes:
    """An IDX file: its magic number, its shape, then the bytes 0, 1, ..., 9, 0, 1, ..."""
    header = b"".join(n.to_bytes(4, "big") for n in (magic, *shape))
    return header + (np.arange(math.prod(shape)) % 10).astype(np.uint8).tobytes()


VALID_IMAGES, VALID_LABELS = idx(2051, N, 28, 28), idx(2049, N)


def project_with(root, **broken: bytes | None):
    """A project with max_samples null, data/raw the valid set with `broken` (None: removed)."""
    project = copy_project(root, {"max_samples": None})
    (project / "data/raw").mkdir(parents=True)
    files = {IMAGES: VALID_IMAGES, LABELS: VALID_LABELS,
             TEST_IMAGES: VALID_IMAGES, TEST_LABELS: VALID_LABELS}
    for name, data in (files | broken).items():
        if data is not None:
            (project / "data/raw" / name).write_bytes(data)
    return project


@pytest.mark.control
def test_the_valid_set_is_accepted(tmp_path, entry_point):
    """The control: without a fault, the same harness prepares the data."""
    project = project_with(tmp_path / "project")
    assert entry_point(prepare, project) == (0, [])
    for output in ("data/prepared", "metrics/data.json", "plots/first_images.png"):
        assert (project / output).exists(), output
    assert temporaries(project) == []


CASES = {
    # name: (file, its bytes, words of the message)
    "wrong-magic-labels-in-images": (IMAGES, VALID_LABELS, "magic number 2049, expected 2051"),
    "wrong-magic-still-gzipped": (IMAGES, b"\x1f\x8b\x08\x08" + bytes(112),
                                  "magic number 529205256, expected 2051"),
    "wrong-dimensions-32x32": (IMAGES, idx(2051, N, 32, 32), "images are 32x32, expected 28x28"),
    "truncated-images": (IMAGES, VALID_IMAGES[:-1000], "the file is truncated or corrupt"),
    "trailing-bytes": (LABELS, VALID_LABELS + b"\0", "the file is truncated or corrupt"),
    "count-mismatch": (LABELS, idx(2049, N - 1), f"has {N} images but"),
    "empty-images": (IMAGES, b"", "0 bytes is too short for an IDX header"),
    "header-cut-short": (IMAGES, VALID_IMAGES[:10], "too short for an IDX header"),
    "missing-file": (LABELS, None, "cannot read data/raw/train-labels-idx1-ubyte: No such file"),
    "test-set-wrong-magic": (TEST_LABELS, VALID_IMAGES, "magic number 2051, expected 2049"),
    "test-set-count-mismatch": (TEST_IMAGES, idx(2051, N + 5, 28, 28), f"has {N + 5} images but"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_broken_idx_file_gives_one_clear_error_and_writes_nothing(case, tmp_path, entry_point):
    name, data, words = CASES[case]
    project = project_with(tmp_path / "project", **{name: data})
    before = snapshot(project)
    line = error_line(*entry_point(prepare, project))
    assert words in line and name in line.split(":")[1], line  # the message starts with its file
    # A broken test file too: the training files are read and checked first, but not written.
    assert snapshot(project) == before
