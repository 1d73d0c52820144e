"""predict.py on real test images: the same inputs and classes as evaluate's, and one line per bad input."""

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict

REPO = Path(__file__).resolve().parents[1]
DATASET = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST, N_IMAGES = 1000, 1000, 10  # a tiny model; ten test images as files


def idx_bytes(images: np.ndarray) -> bytes:
    """An IDX images file (magic 2051: unsigned bytes, 3 dimensions) holding `images`."""
    header = b"".join(int(n).to_bytes(4, "big") for n in (2051, *images.shape))
    return header + images.tobytes()


def read_idx(name: str) -> np.ndarray:
    return predict.parse_idx(gzip.decompress((DATASET / name).read_bytes()), predict.IMAGES_MAGIC)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model path, the first N_TEST test images, the model's probabilities for their prepared rows)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras writes its config where KERAS_HOME says on first import: not in the user's home.
    os.environ.setdefault("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
    import keras

    labels = np.frombuffer(gzip.decompress((DATASET / "train-labels-idx1-ubyte.gz").read_bytes()),
                           np.uint8, offset=8)[:N_TRAIN]
    x_train = predict.scale(read_idx("train-images-idx3-ubyte.gz")[:N_TRAIN])
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    net.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    net.fit(x_train, labels, epochs=1, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    net.save(path)
    images = read_idx("t10k-images-idx3-ubyte.gz")[:N_TEST]
    # As stages/evaluate.py computes them: the prepared rows (uint8 / 255 as float32), batches of 1024.
    return path, images, net.predict(predict.scale(images), batch_size=1024, verbose=0)


@pytest.fixture(scope="module")
def pngs(trained, tmp_path_factory) -> list[Path]:
    """The first N_IMAGES test images as 28x28 8-bit grayscale PNG files."""
    folder = tmp_path_factory.mktemp("pngs")
    paths = [folder / f"test-{i}.png" for i in range(N_IMAGES)]
    for path, image in zip(paths, trained[1], strict=False):
        Image.fromarray(image).save(path)
    return paths


def cli(capsys, *args: object) -> tuple[int, list[str], list[str]]:
    """`python -m predict ARGS` in this process: (exit code, stdout lines, stderr lines)."""
    capsys.readouterr()
    previous = signal.getsignal(signal.SIGTERM)  # run() installs its own
    try:
        predict.run(lambda: predict.main([str(a) for a in args]))
        code = 0
    except SystemExit as exit:
        code = exit.code
    finally:
        signal.signal(signal.SIGTERM, previous)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def parse(line: str) -> tuple[str, list[tuple[str, float]]]:
    """'test-0.png: Ankle boot 97.3%, Sneaker 1.2%' → ('test-0.png', [('Ankle boot', 0.973), ...])."""
    label, _, ranked = line.rpartition(": ")
    pairs = [item.rsplit(" ", 1) for item in ranked.split(", ")]
    return label, [(name, float(percent.rstrip("%")) / 100) for name, percent in pairs]


def test_an_8_bit_png_gives_exactly_the_prepared_row(trained, pngs):
    images = trained[1]
    for i, path in enumerate(pngs):
        labels, rows, inverted = predict.read_inputs(path)
        assert labels == [str(path)] and not inverted
        np.testing.assert_array_equal(rows, np.divide(images[i].reshape(1, 784), 255, dtype=np.float32))


def test_prints_the_classes_and_probabilities_evaluate_computes(trained, pngs, capsys):
    model, _, probabilities = trained
    code, out, err = cli(capsys, "--model", model, *pngs)
    assert code == 0 and err == []
    assert len(out) == N_IMAGES
    for i, line in enumerate(out):
        label, [(name, p)] = parse(line)
        assert label == str(pngs[i])
        assert name == predict.CLASS_NAMES[probabilities[i].argmax()]
        assert p == pytest.approx(probabilities[i].max(), abs=0.0005 + 1e-6)  # printed as 97.3%


def test_top_k_lists_the_k_most_probable_classes_in_order(trained, pngs, capsys):
    model, _, probabilities = trained
    code, out, _ = cli(capsys, "--model", model, "--top", 3, pngs[0])
    assert code == 0
    _, ranked = parse(out[0])
    assert [name for name, _ in ranked] == [predict.CLASS_NAMES[c] for c in np.argsort(-probabilities[0])[:3]]


def test_a_dark_on_light_photo_of_any_size_is_inverted_and_says_so(trained, tmp_path, capsys):
    model, images, probabilities = trained
    image = images[0]
    exact = tmp_path / "negative.png"  # the inversion of an 8-bit image is exact
    Image.fromarray(255 - image).save(exact)
    _, rows, inverted = predict.read_inputs(exact)
    assert inverted
    np.testing.assert_array_equal(rows, predict.scale(image[np.newaxis]))
    # A colour JPEG, 4 times larger: resized and compressed, it stays close to the original.
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(np.kron(255 - image, np.ones((4, 4), np.uint8))).convert("RGB").save(jpeg, quality=95)
    _, rows, inverted = predict.read_inputs(jpeg)
    assert inverted and rows.shape == (1, 784)
    assert np.abs(rows - predict.scale(image[np.newaxis])).mean() < 0.02
    # A wide image is fitted into 28x28 and padded with black above and below.
    wide = tmp_path / "wide.png"
    Image.fromarray(np.hstack([image, image])).save(wide)
    _, rows, inverted = predict.read_inputs(wide)
    fitted = rows.reshape(28, 28)
    assert not inverted and fitted[:7].max() == 0 and fitted[21:].max() == 0 and fitted[7:21].max() > 0.5
    code, out, _ = cli(capsys, "--model", model, exact, jpeg)
    assert code == 0
    assert [parse(line)[0] for line in out] == [f"{exact} (inverted: dark on light)",
                                                f"{jpeg} (inverted: dark on light)"]
    assert parse(out[0])[1][0][0] == predict.CLASS_NAMES[probabilities[0].argmax()]


def test_npy_and_idx_batches(trained, tmp_path, capsys):
    model, images, probabilities = trained
    batch = images[:5]
    # Told apart by their content: the names say nothing.
    files = {"uint8.npy": None, "float.npy": None, "batch": idx_bytes(batch),
             "batch.bin": gzip.compress(idx_bytes(batch))}
    np.save(tmp_path / "uint8.npy", batch)  # n x 28 x 28, 0-255
    np.save(tmp_path / "float.npy", predict.scale(batch))  # n x 784 in [0, 1]
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    for name in files:
        labels, rows, inverted = predict.read_inputs(tmp_path / name)
        assert labels == [f"{tmp_path / name}[{i}]" for i in range(5)] and not inverted
        np.testing.assert_array_equal(rows, predict.scale(batch))
    code, out, _ = cli(capsys, "--model", model, *(tmp_path / name for name in files))
    assert code == 0 and len(out) == 4 * 5
    expected = [predict.CLASS_NAMES[c] for c in probabilities[:5].argmax(axis=1)]
    assert [parse(line)[1][0][0] for line in out] == expected * 4


BAD_INPUTS = {
    "missing.png": (None, "missing.png: no such file"),
    "notes.png": (b"not a picture\n", "notes.png: not an image Pillow can read, nor a .npy or IDX batch"),
    "shape.npy": (np.zeros((3, 27, 27), np.uint8),
                  "shape.npy: an array of shape (3, 27, 27); expected n x 784 or n x 28 x 28, n > 0"),
    "empty.npy": (np.zeros((0, 784), np.uint8),
                  "empty.npy: an array of shape (0, 784); expected n x 784 or n x 28 x 28, n > 0"),
    "range.npy": (np.full((2, 784), 255.0),
                  "range.npy: float64 values must be uint8 0-255 or floats in [0, 1]"),
    "labels-idx1-ubyte": (b"\x00\x00\x08\x01\x00\x00\x00\x01\x07",
                          "labels-idx1-ubyte: magic number 2049, expected 2051"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_a_bad_input_is_one_line_and_exit_1(name, trained, tmp_path, capsys):
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    code, out, err = cli(capsys, "--model", trained[0], path)
    assert (code, out, err) == (1, [], [f"error: {tmp_path}/{message}"])


def test_a_bad_model_is_one_line_and_exit_1(pngs, tmp_path, capsys):
    missing, text, foreign = tmp_path / "missing.keras", tmp_path / "text.keras", tmp_path / "foreign.keras"
    text.write_text("not a model\n")
    import zipfile

    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("weights.txt", "1 2 3")
    expected = {
        missing: f"error: {missing}: no such model file (`dvc pull data/model.keras` fetches the pipeline's; "
                 "docs/registry.md says how to get a released version)",
        text: f"error: {text}: not a .keras model file (the zip archive `model.save` writes)",
        foreign: f"error: cannot load model {foreign}: "
                 "\"There is no item named 'config.json' in the archive\"",
    }
    for model, message in expected.items():
        assert cli(capsys, "--model", model, pngs[0]) == (1, [], [message])


def test_the_command_exits_1_with_one_line(tmp_path):
    """`python -m predict` as a user runs it: a non-image is one line on stderr, exit 1, no traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = subprocess.run([sys.executable, "-m", "predict", str(notes)], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: {notes}: not an image Pillow can read, nor a .npy or IDX batch\n"
