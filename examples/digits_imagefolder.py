"""Write scikit-learn's 8x8 handwritten digits (1,797 real images, shipped inside its wheel) as an ImageFolder.

    python examples/digits_imagefolder.py digits        # digits/0/0000.png ... digits/9/...
    shufflenet-nas train shufflenet_v2_x0_5 --data digits --resolution 32 --epochs 15

Nothing is downloaded: ``sklearn.datasets.load_digits`` reads a file inside the installed package. Each image is
16 grey levels (0..16) scaled to 0..255 and saved as an 8x8 greyscale PNG; `train` reads it as RGB and resizes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(out: Path) -> int:
    """Write every digit to ``out/<label>/<index>.png``; returns how many images were written."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
    return len(digits.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the ImageFolder to write (created)")
    count = write_digits(parser.parse_args().out)
    print(f"wrote {count} images in 10 class folders")


if __name__ == "__main__":
    main()
