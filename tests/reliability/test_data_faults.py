"""Data faults: broken IDX files in data/raw, read by the prepare stage.

Each case corrupts one of the four files of a small valid set and runs the prepare stage's entry
point in this process (stages.cli.run around stages.prepare.main, in the project's directory):
one line `error: <file>: <what is wrong>`, exit 1, and no prepared output, not even a temporary.
"""


import numpy as np
import pytest

from scripts.toolkit import copy_project, error_line, temporaries
from stages.prepare import main as prepare

FAULT_CLASS = "data: a broken IDX file"
USER_SEES = "`error: data/raw/<file>: <what is wrong>` (magic number, size, header, counts), exit 1"

N = 600  # max_samples must be >= 500
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx(magic: int, shape: tuple[int, ...], data: bytes | None = None) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    if data is None:
        data = np.random.default_rng(0).integers(0, 256, int(np.prod(shape)), np.uint8).tobytes()
    return header + data


def valid_images(n=N, size=28) -> bytes:
    return idx(2051, (n, size, size))


def valid_labels(n=N) -> bytes:
    return idx(2049, (n,), (np.arange(n) % 10).astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("data") / "project", {"max_samples": None})


def write_raw(project, **replace):
    raw = project / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    files = {IMAGES: valid_images(), LABELS: valid_labels(),
             TEST_IMAGES: valid_images(), TEST_LABELS: valid_labels()}
    files.update(replace)
    for path in raw.iterdir():
        path.unlink()
    for name, data in files.items():
        if data is not None:
            (raw / name).write_bytes(data)


def outputs(project):
    written = [p for p in ("data/prepared", "metrics/data.json", "plots/first_images.png")
               if (project / p).exists()]
    return written + temporaries(project)


def clean(project):
    import shutil

    shutil.rmtree(project / "data", ignore_errors=True)
    for p in ("metrics/data.json", "plots/first_images.png"):
        (project / p).unlink(missing_ok=True)


@pytest.mark.control
def test_the_valid_set_is_accepted(project, entry_point):
    """The control: without a fault, the same harness prepares the data."""
    clean(project)
    write_raw(project)
    code, errors = entry_point(prepare, project)
    assert (code, errors) == (0, [])
    assert sorted(outputs(project)) == ["data/prepared", "metrics/data.json", "plots/first_images.png"]


GZ_HEADER = b"\x1f\x8b\x08\x08" + bytes(12)

CASES = {
    # name: (file, its bytes, words of the message)
    "wrong-magic-labels-in-images": (IMAGES, valid_labels(), "magic number 2049, expected 2051"),
    "wrong-magic-still-gzipped": (IMAGES, GZ_HEADER + bytes(100), "magic number 529205256, expected 2051"),
    "wrong-dimensions-32x32": (IMAGES, valid_images(size=32), "images are 32x32, expected 28x28"),
    "truncated-images": (IMAGES, valid_images()[:-1000], "the file is truncated or corrupt"),
    "trailing-bytes": (LABELS, valid_labels() + b"\0", "the file is truncated or corrupt"),
    "count-mismatch": (LABELS, valid_labels(N - 1), f"has {N} images but"),
    "empty-images": (IMAGES, b"", "0 bytes is too short for an IDX header"),
    "header-cut-short": (IMAGES, idx(2051, (N, 28, 28))[:10], "too short for an IDX header"),
    "missing-file": (LABELS, None, "cannot read data/raw/train-labels-idx1-ubyte: No such file"),
    "test-set-wrong-magic": (TEST_LABELS, valid_images(), "magic number 2051, expected 2049"),
    "test-set-count-mismatch": (TEST_IMAGES, valid_images(N + 5), f"has {N + 5} images but"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_idx_file_gives_one_clear_error_and_writes_nothing(case, project, entry_point):
    name, data, words = CASES[case]
    clean(project)
    write_raw(project, **{name: data})
    line = error_line(*entry_point(prepare, project))
    assert words in line, line
    assert name in line.split(":")[1], line  # the message starts with the file it is about
    # A broken test file too: the training files are read and checked first, but not written.
    assert outputs(project) == []
