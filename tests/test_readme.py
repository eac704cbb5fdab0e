"""The Python API page's examples (docs/python-api.md, linked from the README) run as
written and do what their comments say."""
import os
import re

import numpy as np

from testutil import REPO
from dcgan_keras.utils.images import read_png


API_PAGE = os.path.join(REPO, "docs", "python-api.md")


def _example(name):
    text = open(API_PAGE).read()
    match = re.search(rf"<!-- {name}-example -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/python-api.md lost its {name} example"
    return match.group(1)


def test_library_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_example("library"), API_PAGE, "exec"), scope)  # noqa: S102 (our own docs)
    gan = scope["gan"]
    assert int(gan.step.numpy()) == 12  # 4 steps an epoch, 2 epochs, then 1 more
    assert scope["samples"].shape == (8, 32, 32, 1) and np.abs(scope["samples"]).max() <= 1
    assert not np.allclose(scope["samples"], scope["ema_samples"])
    assert {"d_loss", "d_x"} <= set(scope["scores"])
    assert sorted(os.listdir("run/samples")) == [
        "ema_epoch_0000.png", "ema_epoch_0001.png", "ema_epoch_0002.png",
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    assert read_png("run/samples/epoch_0002.png").shape == (4 * 34 + 2, 4 * 34 + 2, 1)
    assert sorted(f for f in os.listdir("run/checkpoints") if f.endswith(".index")) == [
        "ckpt-4.index", "ckpt-8.index"]
    assert os.path.exists("run/gan.keras") and any(f.startswith("events.") for f in os.listdir("run"))
    assert "step 8" in capsys.readouterr().out  # the progress line


def test_segmenter_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_example("segmenter"), API_PAGE, "exec"), scope)  # noqa: S102 (our own docs)
    segmenter = scope["segmenter"]
    assert segmenter.concepts == ("other", "reddish")
    images = np.full([2, 32, 32, 3], -1.0, np.float32)
    images[1, :4, :, 0] = 1.0  # four red rows in the second image
    labels = segmenter(images)
    assert labels.shape == (2, 32, 32) and labels.sum() == 4 * 32 and labels[1, :4].all()
