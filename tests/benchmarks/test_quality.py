"""The helpers of benchmarks/quality.py that decide what is compared: the peer's seeds and
the mean over seeds (the benchmark itself is not a test)."""
import importlib.util
import os

import numpy as np

from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "quality", os.path.join(REPO, "benchmarks", "quality.py"))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)

# A stand-in for torch (CI has none) and a peer that seeds it like the real one does.
FAKE_TORCH = """
seeds = []
def manual_seed(s):
    seeds.append(s)
    return s
"""
FAKE_PEER = """
import os, sys, torch
torch.manual_seed(0)
epochs, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
for e in range(1, epochs + 1):
    with open(os.path.join(out, f"peer_epoch{e}.npy"), "w") as f:
        f.write(f"seed={torch.seeds[0]} argv={sys.argv[1:]} main={__name__}")
"""


def _fake_peer(tmp_path, monkeypatch):
    (tmp_path / "torch.py").write_text(FAKE_TORCH)
    (tmp_path / "peer.py").write_text(FAKE_PEER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return str(tmp_path / "peer.py")


def test_peer_seed_offsets_its_manual_seed_and_keeps_its_arguments(tmp_path, monkeypatch):
    peer = _fake_peer(tmp_path, monkeypatch)
    for seed in (0, 2):
        out = tmp_path / f"run{seed}"
        assert quality.run_peer(peer, seed, 2, str(out)) is not None
        text = (out / "peer_epoch2.npy").read_text()
        assert text == f"seed={seed} argv=['2', '{out}'] main=__main__"


def test_peer_samples_already_there_are_reused_and_failures_reported(tmp_path, monkeypatch):
    peer = _fake_peer(tmp_path, monkeypatch)
    out = tmp_path / "done"
    out.mkdir()
    for e in (1, 2):
        (out / f"peer_epoch{e}.npy").write_text("old")
    assert quality.run_peer(peer, 1, 2, str(out)) == 0
    assert (out / "peer_epoch1.npy").read_text() == "old"
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit(3)")
    assert quality.run_peer(str(broken), 0, 1, str(tmp_path / "b")) is None


def test_mean_sd_over_seeds_skips_missing_epochs():
    runs = {0: {1: {"fid": 10.0}, 2: {"fid": 4.0}}, 1: {1: {"fid": 14.0}},
            2: {1: {"fid": 12.0}}}
    mean, sd, n = quality.mean_sd(runs, 1, "fid")
    assert (mean, n) == (12.0, 3) and np.isclose(sd, 2.0)
    assert quality.mean_sd(runs, 2, "fid") == (4.0, 0.0, 1)
    mean, sd, n = quality.mean_sd(runs, 3, "fid")
    assert n == 0 and np.isnan(mean)


def test_scores_round_trip_per_workdir(tmp_path):
    """Per-epoch scores survive in the workdir, so a later invocation (e.g. adding the
    peer) reuses them instead of scoring a model that has trained past that epoch."""
    assert quality.load_scores(str(tmp_path)) == {}
    done = {1: ({"fid": 300.0}, {"fid": 600.0})}
    quality.save_scores(str(tmp_path), done, 1, np.zeros((64, 32, 32, 1), np.float32))
    done[2] = ({"fid": 200.0}, {"fid": 210.0})
    quality.save_scores(str(tmp_path), done, 2, np.ones((64, 32, 32, 1), np.float32))
    assert quality.load_scores(str(tmp_path)) == done
    assert np.load(tmp_path / f"{quality.SAMPLES_FILE}2.npy").min() == 1.0
    assert not (tmp_path / (quality.SCORES_FILE + ".tmp")).exists()


def test_a_workdir_of_another_adam_placement_or_prior_is_refused(tmp_path):
    import json
    import pytest
    paper = {"adam_epsilon_on": "v_hat", "z_distribution": "uniform"}
    quality.check_variants(str(tmp_path), paper)  # no workdir yet: fine
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"seed": 0}, f)  # from before both flags: trained with "v" and N(0, 1)
    quality.check_variants(str(tmp_path), {"adam_epsilon_on": "v", "z_distribution": "normal"})
    with pytest.raises(SystemExit, match="--adam_epsilon_on=v, not v_hat"):
        quality.check_variants(str(tmp_path), paper)
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"adam_epsilon_on": "v_hat"}, f)  # from before --z_distribution
    with pytest.raises(SystemExit, match="--z_distribution=normal, not uniform"):
        quality.check_variants(str(tmp_path), paper)
    with open(tmp_path / "config.json", "w") as f:
        json.dump(paper, f)
    quality.check_variants(str(tmp_path), paper)
