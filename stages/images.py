"""Pictures of images with their class names, for a person to look at."""

import os
import sys

import numpy as np

from stages.data import atomic_path, isolate


def save_image_grid(path: str | os.PathLike, images: np.ndarray, titles: list[str],
                    columns: int = 5) -> None:
    """Save `images` (n × 28 × 28 or n × 784) as a titled grid, in the study's gray_r colormap."""
    if "matplotlib" not in sys.modules:  # noqa: TID251 (read only: Matplotlib reads its home once)
        isolate()
    import matplotlib

    matplotlib.use("Agg")  # no screen here; also keeps pyplot from looking for one
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # the built-in style, whatever a matplotlibrc says
        rows = max(1, -(-len(images) // columns))
        fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, image, title in zip(axes.flat, images, titles, strict=False):  # spares stay blank
            ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r", vmin=0, vmax=np.max(image))
            ax.set_title(title, fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            # No timestamp in the PNG, so the same images give the same bytes.
            fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
