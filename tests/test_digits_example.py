"""The README's real-image demo: scikit-learn's digits written as an ImageFolder, then trained on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shufflenet_nas import load_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_the_digits_become_an_imagefolder_that_train_reads(tmp_path: Path) -> None:
    script = ROOT / "examples" / "digits_imagefolder.py"
    written = subprocess.run([sys.executable, str(script), str(tmp_path / "digits")], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "wrote 1797 images in 10 class folders"
    data = load_dataset(tmp_path / "digits", resolution=32)
    assert data.classes == tuple(str(digit) for digit in range(10)) and data.resolution == 32
    assert (len(data.train_labels), len(data.val_labels)) == (1438, 359)  # 20% of each class held out
    assert data.train_images.float().std() > 30  # real strokes, not blank images

    arch = "stem8s1-v2_n1_c16-v2_n1_c32-v2_n1_c64-head64"  # a tiny V2: one epoch in a few seconds
    command = [sys.executable, "-m", "shufflenet_nas", "train", arch, "--data", str(tmp_path / "digits")]
    command += ["--resolution", "16", "--epochs", "1", "--no-flip", "--threads", "1", "--out", str(tmp_path / "w")]
    trained = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert trained.returncode == 0, trained.stderr
    assert "top-1 " in trained.stdout and "after 1 epoch on 359 held-out images" in trained.stdout
    recipe = next(line for line in trained.stderr.splitlines() if line.startswith("recipe:"))
    assert "random-resized crop" in recipe and "flip" not in recipe
