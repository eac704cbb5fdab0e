"""The README's library example runs as written and does what its comments say."""
import os
import re

import numpy as np

from testutil import REPO
from dcgan_keras.utils.images import read_png


def _example():
    text = open(os.path.join(REPO, "README.md")).read()
    match = re.search(r"<!-- library-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its library example"
    return match.group(1)


def test_library_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_example(), "README.md", "exec"), scope)  # noqa: S102 (our own README)
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
