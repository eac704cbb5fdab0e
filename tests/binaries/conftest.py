"""A tiny --dataset=shapes run of the train binary, shared by the analyze and paint tests."""
import pytest
from testutil import built_once, run_binary

from dcgan_keras.exporters import export_lib

SHAPES_SIZE = 16


@pytest.fixture(scope="session")
def shapes_workdir(tmp_path_factory):
    """The workdir of a 2-step shapes run (16x16 RGB, 8 filters, 8-d z) with its export in
    workdir/export, made once per test run. Tests must not change what is in it."""
    return built_once(tmp_path_factory, "shapes_workdir", _train_shapes)


def _train_shapes(workdir):
    proc = run_binary("dcgan_keras.binaries.train", "--dataset=shapes", f"--workdir={workdir}",
                      f"--image_size={SHAPES_SIZE}", "--channels=3", "--base_width=8",
                      "--z_dim=8", "--batch_size=16", "--max_steps=2", "--cache_images=false",
                      "--num_sample_images=4", "--mixed_precision=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    export_lib.export_from_workdir(workdir, quantizations=[])
