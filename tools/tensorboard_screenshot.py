"""Screenshots TensorBoard's Scalars and Images tabs for a run into one PNG (the README's).

    python tools/tensorboard_screenshot.py --logdir=runs/fmnist --out=docs/images/tensorboard.png

Needs Debian's `chromium`. The README's picture came from
`python -m dcgan_keras.binaries.train --dataset=fashion_mnist --image_size=32 --channels=1
--base_width=32 --epochs=2 --log_every=10 --ema_decay=0.99 --workdir=W`.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from PIL import Image


def shot(url, path, size="1300,900"):
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={size}",
                    "--virtual-time-budget=20000", f"--screenshot={path}", url],
                   check=True, capture_output=True)
    return Image.open(path).convert("RGB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--out", default="docs/images/tensorboard.png")
    parser.add_argument("--port", type=int, default=6123)
    args = parser.parse_args()
    board = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "tensorboard"),
                              f"--logdir={args.logdir}", f"--port={args.port}",
                              "--host=127.0.0.1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}/"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(base + "data/runs").read() != b"[]":
                    break
            except OSError:
                pass
            time.sleep(1)
        with tempfile.TemporaryDirectory() as tmp:
            scalars = shot(base + "#scalars", os.path.join(tmp, "s.png")).crop((0, 0, 1040, 745))
            images = shot(base + "#images", os.path.join(tmp, "i.png")).crop((335, 125, 720, 680))
    finally:
        board.terminate()
    canvas = Image.new("RGB", (scalars.width + images.width, scalars.height), "white")
    canvas.paste(scalars, (0, 0))
    canvas.paste(images, (scalars.width, 0))
    canvas = canvas.resize((canvas.width * 3 // 4, canvas.height * 3 // 4), Image.LANCZOS)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out} ({canvas.width}x{canvas.height})")


if __name__ == "__main__":
    main()
