"""Stage 2: the IDX images as float32 rows of 784 values in [0, 1], described and drawn."""

import numpy as np

from stages import data, params
from stages.exits import run
from stages.images import save_image_grid

PARAMS = ("max_samples",)


def describe(labels: np.ndarray, images: np.ndarray) -> dict:
    counts = np.bincount(labels, minlength=len(data.CLASS_NAMES))
    samples, height, width = map(int, images.shape)
    return {"samples": samples, "height": height, "width": width,
            "class_counts": dict(zip(data.CLASS_NAMES, map(int, counts), strict=True))}


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
            np.save(prepared / f"x_{prefix}.npy", data.scale_and_flatten(images))
            np.save(prepared / f"y_{prefix}.npy", labels)
            description[prefix] = describe(labels, images)
            n, height, width = images.shape
            print(f"{prefix}: {n} images of {height}x{width} → "
                  f"x_{prefix} {n} x {height * width} float32 in [0, 1]")
    images, labels = sets["train"]
    save_image_grid(data.FIRST_IMAGES_PLOT, images[:10], [data.CLASS_NAMES[y] for y in labels[:10]])
    data.write_json(data.DATA_REPORT, description)


if __name__ == "__main__":
    run(main)
