"""Shared test set-up: quiet TensorFlow, two logical CPU devices, tiny data helpers, and the
two lanes.

The lanes (README "Tests"): `make test` runs every test that starts no process and opens no
browser, in under 3 minutes on 2 cores; `make test-all` runs everything (CI). A test's lane
is decided here, in one place, from where it lives and what it does (LANES below), never by
a marker someone has to remember. A test left in the fast lane that starts a process fails
with a message saying where to put it.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Split the CPU into two logical devices (before TensorFlow initialises them) so that
# MirroredStrategy tests have two replicas on a machine without GPUs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by another conftest / plugin
    pass

from testutil import make_idx_dataset  # noqa: E402

# Where a test's lane comes from: a prefix of its node id (relative to tests/) -> markers.
# A directory puts every file under it in the lane, so a new test of a binary is slow
# without anyone having to remember. A test with none of these markers gets "fast": `make
# test` runs `-m fast`.
LANES = {
    # run the binaries in subprocesses, most of them training first
    "binaries/": {"slow"},
    "test_bad_input.py::test_odd_images_train_and_junk": {"slow"},
    "test_bad_input.py::test_folders_without_usable_images": {"slow"},
    "test_bad_input.py::test_a_workdir_with_no_checkpoint": {"slow"},
    "test_bad_input.py::test_a_corrupt_config_json": {"slow"},
    "test_bad_input.py::test_a_bad_flag_exits_2": {"slow"},
    "evaluation/test_quality_eval.py::test_evaluate_binary": {"slow"},
    "data/dedup/test_semantic_hash.py::test_binary_": {"slow"},
    "evolution/test_train_egan.py": {"slow"},
    "exporters/test_export_lib.py::test_export_binary_": {"slow"},
    "training/test_reliability.py::test_resume_from_the_workdir_alone": {"slow"},
    "training/test_reliability.py::test_a_signal_writes_a_checkpoint": {"slow"},
    "training/test_reliability.py::test_killed_at_random_moments": {"slow"},
    "training/test_reliability.py::test_train_resume_and_export_with_a_workdir": {"slow"},
    "training/test_reliability.py::test_an_unwritable_workdir": {"slow"},
    # in process but 10-45 s each on one core (the fast lane must stay under 3 minutes):
    # two trainings with the profiler, XLA and the GPU path on two replicas, E-GAN on two
    # replicas and its GPU-path traces and resumes, the Newton SVM against liblinear on
    # four C values
    "training/test_profile.py::test_profile_steps_write": {"slow"},
    "benchmarks/test_step_profile.py::test_a_real_profile": {"slow"},
    "training/test_xla_mirrored.py::test_mirrored_jit_on_two_cpus_falls_back": {"slow"},
    "evolution/test_egan.py::test_gpu_path_compiles_each_replica_generation": {"slow"},
    "evolution/test_egan.py::test_two_replicas_make_the_same_children": {"slow"},
    "evolution/test_egan.py::test_keras_file_keeps_the_population": {"slow"},
    "training/test_xla_mirrored.py::test_gpu_path_compiles_each_replica_step": {"slow"},
    "evolution/test_toy_networks.py::test_resume_from_a_checkpoint_is_exact": {"slow"},
    "evaluation/test_svm_probe.py::test_newton_l2svm_matches_liblinear_in_the_span": {"slow"},
    # runs a (failing) C++ compiler
    "models/test_native_ops.py::test_a_failed_build": {"slow"},
    # starts a process per thread count
    "models/test_native_ops.py::test_results_do_not_depend_on_the_thread_count": {"slow"},
    # builds the library with AMX hidden, in a process
    "models/test_native_ops.py::test_with_amx_hidden_the_library_has_no_amx_ops": {"slow"},
    # parse every documented command with each program's own flags, in one process
    "test_docs.py::test_every_documented": {"slow"},
    "test_docs.py::test_help_": {"slow"},
    "test_docs.py::test_train_help": {"slow"},
    # start the peer's script (a stand-in) as the benchmark does
    "benchmarks/test_quality.py::test_peer_": {"slow"},
    # headless Chromium through chromedriver
    "analysis/dissect/paint/test_paint_browser.py": {"slow", "browser"},
    # worker processes of MultiWorkerMirroredStrategy on 127.0.0.1
    "training/test_multi_worker.py::test_two_workers": {"slow", "multiprocess"},
}
# Fixtures that start processes: every test that uses one (directly or through another
# fixture) is in their lane.
FIXTURE_LANES = {
    "fresh": {"slow"},  # a fresh process, with TensorFlow alone, loads every export
    "shapes_workdir": {"slow"},  # the train binary on --dataset=shapes
}


def lane_markers(nodeid, fixturenames=()):
    """The markers that LANES and FIXTURE_LANES give a test, from its node id (such as
    'tests/binaries/test_sample.py::test_x') and the fixtures it uses."""
    relative = nodeid.split("tests/", 1)[-1]
    return set().union(*(marks for prefix, marks in LANES.items()
                         if relative.startswith(prefix)),
                       *(FIXTURE_LANES.get(name, set()) for name in fixturenames))


_COLLECTED = {}  # node id -> its lane markers, for every collected test (tests/test_lanes.py)


def pytest_collection_modifyitems(config, items):
    for item in items:
        markers = lane_markers(item.nodeid, getattr(item, "fixturenames", ())) or {"fast"}
        for name in sorted(markers):
            item.add_marker(getattr(pytest.mark, name))
        _COLLECTED[item.nodeid] = markers


@pytest.fixture
def lanes():
    """(lane_markers, {node id: markers} of every test this run collected, before -m)."""
    return lane_markers, dict(_COLLECTED)


class _NoProcessInTheFastLane:
    """subprocess.Popen for fast-lane tests: refuses, naming the place to mark the test."""

    def __init__(self, nodeid):
        self.nodeid = nodeid

    def __call__(self, *args, **kwargs):
        raise AssertionError(
            f"{self.nodeid} starts a process but is in the fast lane: add its node id (or a "
            "prefix of it) to LANES in tests/conftest.py with the 'slow' marker")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Covers the test's fixtures too (a fixture that trains through a binary makes every
    # test that uses it slow).
    fast = item.get_closest_marker("fast") is not None
    original = subprocess.Popen
    if fast:
        subprocess.Popen = _NoProcessInTheFastLane(item.nodeid)
    try:
        yield
    finally:
        subprocess.Popen = original


@pytest.fixture
def idx_dir(tmp_path):
    return make_idx_dataset(str(tmp_path / "fmnist"))
