"""The bad-input table of the README: every mistake gets one clear line and a non-zero
exit (never a traceback), and odd but valid images are read, not refused."""
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from absl import flags

from testutil import make_idx_dataset, run_binary
from dcgan_keras.binaries import common
from dcgan_keras.config import TrainConfig
from dcgan_keras.training import train_lib

TRAIN = "dcgan_keras.binaries.train"


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def _odd_but_valid_images(directory, rng):
    """Every mode a folder of photos may hold; each decodes to an RGB image."""
    os.makedirs(directory, exist_ok=True)
    pixels = lambda *shape: rng.integers(0, 256, shape).astype(np.uint8)  # noqa: E731
    _save(f"{directory}/gray.png", Image.fromarray(pixels(40, 40)))
    _save(f"{directory}/rgba.png", Image.fromarray(pixels(40, 40, 4)))
    _save(f"{directory}/palette.png", Image.fromarray(pixels(40, 40, 3)).convert("P"))
    _save(f"{directory}/sixteen_bit.png",
          Image.fromarray(pixels(40, 40).astype(np.uint16) * 257))
    _save(f"{directory}/cmyk.jpg", Image.fromarray(pixels(40, 40, 3)).convert("CMYK"))
    _save(f"{directory}/small.png", Image.fromarray(pixels(6, 9, 3)))  # < image_size
    _save(f"{directory}/wide.jpg", Image.fromarray(pixels(20, 70, 3)))
    for i in range(9):
        _save(f"{directory}/rgb_{i}.jpg", Image.fromarray(pixels(32, 32, 3)))
    return 16


def _junk(directory, rng):
    os.makedirs(directory, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)).save(buffer, "JPEG")
    open(f"{directory}/truncated.jpg", "wb").write(buffer.getvalue()[:200])
    open(f"{directory}/zero_bytes.png", "wb").close()
    open(f"{directory}/corrupt.png", "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(100))
    open(f"{directory}/notes.txt", "w").write("not an image")  # ignored by extension
    frames = [Image.fromarray(rng.integers(0, 256, (20, 20, 3)).astype(np.uint8))
              for _ in range(3)]
    frames[0].save(f"{directory}/animated.gif", save_all=True, append_images=frames[1:])
    return 3  # the three image files that do not decode


def _flags(workdir, data_dir, **extra):
    flags = dict(workdir=workdir, dataset="folder", data_dir=data_dir, image_size=16,
                 channels=3, base_width=4, z_dim=8, batch_size=4, max_steps=2,
                 log_every=1, num_sample_images=4, cache_images="false")
    flags.update(extra)
    return [f"--{k}={v}" for k, v in flags.items()]


def _one_clear_line(result, *needles):
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_odd_images_train_and_junk_is_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    data = str(tmp_path / "images")
    _odd_but_valid_images(data, rng)
    junk = _junk(data, rng)
    result = run_binary(TRAIN, *_flags(str(tmp_path / "run"), data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Skipped {junk} unreadable or corrupt image files of 19" in result.stderr
    assert "trained to step 2" in result.stdout


@pytest.mark.parametrize("case", ["empty", "only_junk", "missing"])
def test_folders_without_usable_images(tmp_path, case):
    data = tmp_path / "images"
    data.mkdir()
    if case == "only_junk":
        _junk(str(data), np.random.default_rng(0))
    if case == "missing":
        data = tmp_path / "nowhere"
    result = run_binary(TRAIN, *_flags(str(tmp_path / "run"), str(data)))
    expected = {"empty": "no .jpg/.jpeg/.png/.webp/.bmp files under",
                "only_junk": "none of the 3 files decode",
                "missing": "is not a directory of images"}[case]
    _one_clear_line(result, expected)


# Each bad value of the train binary's flags, checked in this process against the flags'
# own parsing and the config's validation (what the binary runs before any work); the
# binary's "exit 2 with one line" is checked once, by a real process, below.
@pytest.mark.parametrize("flag,message", [
    ("--image_size=48", "image_size must be a power of two"),
    ("--batch_size=-3", "batch_size must be >= 1"),
    ("--batch_size=0", "batch_size must be >= 1"),
    ("--channels=2", "channels must be 1"),
    ("--learning_rate=-1", "learning_rate must be > 0"),
    ("--dataset=imagenet", "value should be one of"),
    ("--strategy=horovod", "value should be one of"),
    ("--mixed_precision=fp8", "value should be one of"),
    ("--d_steps=0", "d_steps must be >= 1"),
    ("--d_steps=3", "batch_size=64 does not split into d_steps=3 D steps of equal size; "
                    "use a multiple of 3, e.g. 63"),
    ("--instance_noise=-0.1", "instance_noise and instance_noise_steps must be >= 0"),
    ("--trainer=egan --instance_noise=0.1", "instance_noise is the DCGAN trainer's"),
    ("--trainer=egan --d_steps=2", "d_steps=2 is the DCGAN trainer's; an E-GAN "
                                   "generation's D steps are egan_d_steps"),
])
def test_invalid_flag_values(tmp_path, flag, message):
    base = [f"--workdir={tmp_path}/run", "--dataset=fashion_mnist", "--image_size=16",
            "--channels=1", "--base_width=4", "--batch_size=64"]
    with pytest.raises((flags.Error, ValueError), match=re.escape(message)):
        with common.binary_flags("train", base + flag.split()) as train:
            train.config_from_flags().validate()
    with common.binary_flags("train", base) as train:  # and without it: a valid run
        config = train.config_from_flags().validate()
    assert (config.image_size, config.channels, config.base_width) == (16, 1, 4)


def test_steps_per_execution_must_divide_an_epoch(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))  # 64 images: 4 steps of 16
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                         base_width=4, batch_size=16, steps_per_execution=3,
                         allow_download=False)
    with pytest.raises(ValueError, match=r"steps_per_execution 3 must divide the 4 steps "
                                         r"of an epoch.*use 1 or one of \[2, 4\]"):
        train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_a_bad_flag_exits_2_with_one_line(tmp_path):
    result = run_binary(TRAIN, f"--workdir={tmp_path}/run", "--dataset=fashion_mnist",
                        "--image_size=48")
    assert result.returncode == 2
    _one_clear_line(result, "image_size must be a power of two")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    data = make_idx_dataset(str(root / "data"))
    workdir = str(root / "run")
    train_lib.train_and_evaluate(TrainConfig(
        dataset="fashion_mnist", data_dir=data, image_size=16, channels=1, base_width=4,
        z_dim=8, batch_size=16, max_steps=2, allow_download=False), workdir)
    return workdir


def test_a_workdir_with_no_checkpoint_or_another_models_checkpoints(workdir, tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(workdir, empty, ignore=shutil.ignore_patterns("checkpoints"))
    _one_clear_line(run_binary("dcgan_keras.binaries.export", f"--workdir={empty}"),
                    "no latest checkpoint")
    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    config = json.load(open(other / "config.json"))
    json.dump(dict(config, base_width=8), open(other / "config.json", "w"))
    for binary, args in (("export", []), ("sample", ["--out=" + str(tmp_path / "s.png")])):
        result = run_binary(f"dcgan_keras.binaries.{binary}", f"--workdir={other}", *args)
        _one_clear_line(result, "does not fit the model described by")


def test_a_corrupt_config_json(workdir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(workdir, broken)
    (broken / "config.json").write_text('{"image_size": ')
    for binary in ("train", "export"):
        result = run_binary(f"dcgan_keras.binaries.{binary}", f"--workdir={broken}")
        _one_clear_line(result, "config.json is corrupt")
