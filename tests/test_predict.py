"""predict.py with the reference run's model on real test images, and one line per bad input.

The same inputs (data/prepared) and classes (plots/confusion.csv) as evaluate's."""

import csv
import gzip
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

import predict
from scripts.toolkit import REPO, run
from stages.data import DEBIAN

N = 10  # test images


@pytest.fixture(scope="module")
def evaluated(reference, tmp_path_factory):
    """The reference's model, N test images, their prepared rows, probabilities, classes."""
    # Keras writes its config where KERAS_HOME says on first import: not in the user's home.
    os.environ.setdefault("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
    import keras

    model, x = reference / "data/model.keras", np.load(reference / "data/prepared/x_test.npy")[:N]
    idx = gzip.decompress((DEBIAN / "t10k-images-idx3-ubyte.gz").read_bytes())
    images = predict.parse_idx(idx, predict.IMAGES_MAGIC)[:N]
    with open(reference / "plots/confusion.csv", newline="") as file:
        classes = [row["predicted"] for row in csv.DictReader(file)][:N]
    return model, images, x, keras.models.load_model(model).predict(x, verbose=0), classes


def cli(capsys, *args: object) -> tuple[int, list[str], list[str]]:
    """`python -m predict ARGS` in this process: (exit code, stdout lines, stderr lines)."""
    capsys.readouterr()
    try:
        predict.run(lambda: predict.main([str(a) for a in args]))  # restores the signal handlers
        code = 0
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def parse(line: str) -> tuple[str, list[tuple[str, float]]]:
    """'a.png: Ankle boot 97.3%, Sneaker 1.2%' → ('a.png', [('Ankle boot', 0.973), ...])."""
    label, _, ranked = line.rpartition(": ")
    pairs = [item.rsplit(" ", 1) for item in ranked.split(", ")]
    return label, [(name, float(percent.rstrip("%")) / 100) for name, percent in pairs]


def test_images_and_batches_give_the_prepared_rows_and_evaluates_classes(evaluated, tmp_path,
                                                                         capsys):
    model, images, x, probabilities, classes = evaluated
    pngs = [tmp_path / f"test-{i}.png" for i in range(N)]  # 28x28 8-bit grayscale
    for path, image in zip(pngs, images, strict=True):
        Image.fromarray(image).save(path)
    # Batches, told apart by their content (not their names): .npy of 0-255 or [0, 1], IDX, IDX.gz.
    batches = [tmp_path / name for name in ("uint8.npy", "float.npy", "batch", "batch.bin")]
    np.save(batches[0], images)
    np.save(batches[1], x)
    header = np.array([2051, *images.shape], ">u4").tobytes()  # IDX's
    batches[2].write_bytes(header + images.tobytes())
    batches[3].write_bytes(gzip.compress(batches[2].read_bytes()))
    # Dark on light, of any size: inverted, and the output says so. The inversion of an 8-bit image
    # is exact; a colour JPEG 4 times larger, resized and compressed, stays close to the original.
    negative, jpeg, wide = tmp_path / "negative.png", tmp_path / "photo.jpg", tmp_path / "wide.png"
    Image.fromarray(255 - images[0]).save(negative)
    large = Image.fromarray(np.kron(255 - images[0], np.ones((4, 4), np.uint8)))
    large.convert("RGB").save(jpeg, quality=95)
    Image.fromarray(np.hstack([images[0], images[0]])).save(wide)  # fitted, black above and below
    inputs = {path: ([str(path)], x[i:i + 1], False) for i, path in enumerate(pngs)}
    inputs.update({path: ([f"{path}[{i}]" for i in range(N)], x, False) for path in batches})
    inputs[negative] = ([str(negative)], x[:1], True)
    for path, (expected_labels, expected_rows, expected_inverted) in inputs.items():
        labels, rows, inverted = predict.read_inputs(path)
        assert (labels, inverted) == (expected_labels, expected_inverted)
        np.testing.assert_array_equal(rows, expected_rows)
    _, rows, inverted = predict.read_inputs(jpeg)
    assert inverted and rows.shape == (1, 784) and np.abs(rows - x[:1]).mean() < 0.02
    _, rows, inverted = predict.read_inputs(wide)
    fitted = rows.reshape(28, 28)
    assert not inverted and fitted[:7].max() == 0 == fitted[21:].max() and fitted[7:21].max() > 0.5

    code, out, err = cli(capsys, "--model", model, *pngs, *batches, negative, jpeg)
    assert (code, err) == (0, [])
    assert [parse(line)[0] for line in out[:N] + out[-2:]] == [*map(str, pngs),
        f"{negative} (inverted: dark on light)", f"{jpeg} (inverted: dark on light)"]
    assert [parse(line)[1][0][0] for line in out[:-1]] == classes * 5 + classes[:1]
    printed = [parse(line)[1][0][1] for line in out[:N]]
    assert printed == pytest.approx(probabilities.max(axis=1), abs=0.0005 + 1e-6)  # as 97.3%
    code, out, _ = cli(capsys, "--model", model, "--top", 3, pngs[0])
    top = [predict.CLASS_NAMES[c] for c in np.argsort(-probabilities[0])[:3]]
    assert (code, [name for name, _ in parse(out[0])[1]]) == (0, top)


def narrow_model(path):
    """Save a model of 100 inputs to `path`: a Keras model, not one for these images."""
    import keras

    keras.Sequential([keras.Input((100,)), keras.layers.Dense(10, activation="softmax")]).save(path)


# (file, content, error line): a .keras or .h5 file is the --model, the rest inputs. The loader's
# other faults: tests/test_models.py; a text image: the last test.
@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.png", None, "{path}: no such file"),
    ("shape.npy", np.zeros((3, 27, 27), np.uint8),
     "{path}: an array of shape (3, 27, 27); expected n x 784 or n x 28 x 28, n > 0"),
    ("empty.npy", np.zeros((0, 784), np.uint8),
     "{path}: an array of shape (0, 784); expected n x 784 or n x 28 x 28, n > 0"),
    ("range.npy", np.full((2, 784), 255.0),
     "{path}: float64 values must be uint8 0-255 or floats in [0, 1]"),
    ("labels-idx1", b"\x00\x00\x08\x01\x00\x00\x00\x01\x07",
     "{path}: magic number 2049, expected 2051"),
    ("missing.keras", None, "cannot read {path}: No such file or directory"),
    ("model.h5", b"\x89HDF\r\n\x1a\n",
     "cannot load {path}: not a .keras file, the only model format Keras 3 loads"),
    ("text.keras", b"not a model\n", "cannot load {path}: not a zip archive"),
    ("foreign.keras", ("weights.txt", "1 2 3"),  # a zip archive, not Keras's
     "cannot load {path}: no config.json in its zip archive: not a Keras model"),
    ("narrow.keras", narrow_model, "{path}: a model of inputs (None, 100) and outputs (None, 10); "
                                   "expected (None, 784) and (None, 10)"),
])
def test_a_bad_input_or_model_is_one_line_and_exit_1(name, content, message, evaluated, tmp_path,
                                                      capsys):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, tuple):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(*content)
    elif callable(content):
        content(path)
    elif content is not None:
        np.save(path, content)
    np.save(tmp_path / "good.npy", evaluated[2])  # the input when the model is the bad file
    is_model = path.suffix in (".keras", ".h5")
    model, image = (path, tmp_path / "good.npy") if is_model else (evaluated[0], path)
    assert cli(capsys, "--model", model, image) == (1, [], ["error: " + message.format(path=path)])


def test_the_command_exits_1_with_one_line(tmp_path):
    """`python -m predict` as a user runs it: a non-image is one line, exit 1, no traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = run(REPO, "python", "-m", "predict", str(notes))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"error: {notes}: not an image Pillow can read, nor a .npy or IDX "
                             "batch\n")
