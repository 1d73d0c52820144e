"""Stage 2: the IDX images as float32 rows of 784 values in [0, 1], described (metrics/data.json), drawn."""

import numpy as np

from stages import data, params
from stages.cli import run
from stages.images import save_image_grid

PARAMS = ("max_samples",)


def scale_and_flatten(images: np.ndarray) -> np.ndarray:
    """uint8 images (n × 28 × 28) → float32 rows of 784 values in [0, 1]."""
    flat = images.reshape(len(images), -1)
    return np.divide(flat, 255, dtype=np.float32)


def describe(labels: np.ndarray, images: np.ndarray) -> dict:
    counts = np.bincount(labels, minlength=len(data.CLASS_NAMES))
    samples, height, width = map(int, images.shape)
    return {"samples": samples, "height": height, "width": width,
            "class_counts": {name: int(n) for name, n in zip(data.CLASS_NAMES, counts, strict=True)}}


def main() -> None:
    p = params.load(*PARAMS)
    sets = {}  # all four files read and checked before anything is written
    for prefix, stem in (("train", "train"), ("test", "t10k")):
        images, labels = data.read_images_and_labels(data.RAW_DIR / f"{stem}-images-idx3-ubyte",
                                                     data.RAW_DIR / f"{stem}-labels-idx1-ubyte")
        sets[prefix] = images[: p.max_samples], labels[: p.max_samples]  # [:None] keeps all

    description = {}
    with data.atomic_path(data.PREPARED_DIR, directory=True) as prepared:
        for prefix, (images, labels) in sets.items():
            np.save(prepared / f"x_{prefix}.npy", scale_and_flatten(images))
            np.save(prepared / f"y_{prefix}.npy", labels)
            description[prefix] = describe(labels, images)
            print(f"{prefix}: {images.shape[0]} images of {images.shape[1]}x{images.shape[2]} → "
                  f"x_{prefix} {images.shape[0]} x {images.shape[1] * images.shape[2]} float32 in [0, 1]")
    images, labels = sets["train"]
    save_image_grid(data.FIRST_IMAGES_PLOT, images[:10], [data.CLASS_NAMES[y] for y in labels[:10]])
    data.write_json(data.DATA_REPORT, description)


if __name__ == "__main__":
    run(main)
