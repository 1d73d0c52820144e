"""What Fashion-MNIST is: its four files, their verified payloads, and its class names."""

from typing import NamedTuple


class Payload(NamedTuple):
    sha256: str  # of the decompressed IDX bytes: mirrors recompress, so the .gz bytes differ
    size: int


FILES: dict[str, Payload] = {
    "train-images-idx3-ubyte": Payload(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016
    ),
    "train-labels-idx1-ubyte": Payload(
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008
    ),
    "t10k-images-idx3-ubyte": Payload(
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016
    ),
    "t10k-labels-idx1-ubyte": Payload(
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008
    ),
}

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
