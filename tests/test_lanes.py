"""The two test lanes (tests/conftest.py): each test is in exactly one, the rules put
binaries, browsers and worker processes in the slow one (also a test file that does not
exist yet), and a fast-lane test cannot start a process."""
import subprocess
import sys

import pytest

SLOW = {"slow", "browser", "multiprocess"}


def test_every_collected_test_is_in_one_lane(lanes, request):
    _, collected = lanes
    assert request.node.nodeid in collected
    for nodeid, markers in collected.items():
        assert (markers == {"fast"}) != bool(markers & SLOW), f"{nodeid}: {markers}"
        assert markers <= SLOW | {"fast"}


def test_the_rules_put_each_kind_of_test_in_its_lane(lanes):
    lane_markers, _ = lanes
    # a binary's test file that nobody has marked yet
    assert "slow" in lane_markers("tests/binaries/test_a_new_binary.py::test_it_runs")
    assert {"slow", "browser"} <= lane_markers(
        "tests/analysis/dissect/paint/test_paint_browser.py::test_paint_in_a_browser")
    assert {"slow", "multiprocess"} <= lane_markers(
        "tests/training/test_multi_worker.py::test_two_workers_train_as_one_and_resume")
    # a fixture that starts a process makes its users slow, wherever they live
    assert "slow" in lane_markers("tests/exporters/test_new.py::test_x", ["fresh"])
    assert "slow" in lane_markers("tests/analysis/test_new.py::test_x", ["shapes_workdir"])
    # in-process tests stay fast
    assert lane_markers("tests/test_losses.py::test_generator_losses_match_numpy",
                        ["tmp_path"]) == set()
    assert lane_markers("tests/training/test_multi_worker.py::"
                        "test_replicas_keep_identical_weights_without_sync_batchnorm") == set()


def test_a_fast_test_cannot_start_a_process(request):
    assert request.node.get_closest_marker("fast") is not None
    with pytest.raises(AssertionError, match="add its node id .* to LANES in "
                                             "tests/conftest.py"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
