"""What benchmarks/egan_vs_dcgan.py compares and how it continues (the training itself is
stood in for: the benchmark's runs are hours), and egan_cost.py's FLOP model."""
import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest

from testutil import REPO


def _load(name):
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # they import quality.py
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("egan_vs_dcgan")
cost = _load("egan_cost")


def _args(**kw):
    values = dict(d_batch=32, n_d=3, base_width=32, egan_gamma=0.004, egan_fitness_batch=256,
                  epochs=1.0, minutes=25.0, points_per_epoch=2, num_samples=10)
    values.update(kw)
    return types.SimpleNamespace(**values)


def test_dcgan_nd_and_egan_make_the_same_d_updates_on_the_same_images():
    args = _args()
    plain, nd, egan, egan_q = (bench.method_config(m, 0, args) for m in bench.METHODS)
    assert bench.DEFAULT_METHODS == bench.METHODS[:3]
    assert (egan.egan_gamma, egan_q.egan_gamma) == (0.004, 0.0)
    assert egan_q.batch_size == egan.batch_size and egan_q.egan_d_steps == 3
    assert (plain.batch_size, plain.d_steps, plain.trainer) == (32, 1, "dcgan")
    assert (nd.batch_size, nd.d_steps, nd.trainer) == (96, 3, "dcgan")
    assert (egan.batch_size, egan.egan_d_steps, egan.trainer) == (96, 3, "egan")
    for config in (plain, nd, egan):
        config.validate()
        assert (config.base_width, config.mixed_precision, config.image_size) == (32, "none", 32)


class FakeTraining:
    """Stands in for train_lib.train_and_evaluate: a run that resumes from its step."""

    def __init__(self, seconds_per_step=0.1):
        self.calls, self.seconds_per_step = [], seconds_per_step

    def __call__(self, config, workdir):
        self.calls.append(config.max_steps)
        gan = types.SimpleNamespace(step=types.SimpleNamespace(
            numpy=lambda: config.max_steps), generator=None)
        logs = {"F_heuristic": 0.5, "Fq_heuristic": 0.4, "Fd_heuristic": -2.0,
                "wins_heuristic": 3, "selected": 1, "diversity_decided": 0}
        return dict(logs, gan=gan, images_per_sec=config.batch_size / self.seconds_per_step)


@pytest.fixture
def fake(monkeypatch):
    training = FakeTraining()
    monkeypatch.setattr(bench.train_lib, "train_and_evaluate", training)
    monkeypatch.setattr(bench.sample_quality, "generate",
                        lambda g, n, seed: np.zeros([n, 32, 32, 1], np.float32))
    monkeypatch.setattr(bench.sample_quality, "score",
                        lambda *a, **k: {"fid": 50.0, "kid": 0.01, "is": 4.0})
    from dcgan_keras import workdir as workdir_lib  # a finished run's last samples
    monkeypatch.setattr(workdir_lib, "restore_models", lambda w: (None, None, 0, None))
    return training


def _net(images):
    return images.reshape(len(images), -1)[:, :4], np.full([len(images), 10], 0.1)


def test_a_run_is_scored_in_pieces_and_a_longer_run_continues_it(tmp_path, fake):
    out = str(tmp_path)
    steps_per_epoch = 60_000 // 96  # 625 generations of 96 images
    curve, samples = bench.run_method("egan", 0, _args(), _net, None, out)
    assert fake.calls == [312, 624, 625]  # two points an epoch, then the epoch's end
    assert [p["step"] for p in curve["points"]] == fake.calls
    assert curve["stopped_by"] == "epochs" and samples.shape == (10, 32, 32, 1)
    last = curve["points"][-1]
    assert last["d_updates"] == 3 * 625 and last["epochs"] == 1.0
    assert last["train_seconds"] == pytest.approx(625 * 0.1, abs=0.2)  # steady rate
    assert last["logs"]["Fd_heuristic"] == -2.0 and last["logs"]["diversity_decided"] == 0
    saved = json.load(open(os.path.join(out, "egan_seed0", bench.CURVE)))
    assert saved["points"] == curve["points"]
    # The same length again: nothing is trained; longer: it goes on from step 625.
    fake.calls.clear()
    curve, _ = bench.run_method("egan", 0, _args(epochs=2.0), _net, None, out)
    assert fake.calls == [625 + 312, 625 + 624, 2 * steps_per_epoch]
    assert [p["step"] for p in curve["points"]][:3] == [312, 624, 625]
    # A config field the curve predates counts at its default; another setting is
    # refused rather than mixed into the curve.
    path = os.path.join(out, "egan_seed0", bench.CURVE)
    saved = json.load(open(path))
    del saved["config"]["profile_steps"]
    json.dump(saved, open(path, "w"))
    fake.calls.clear()
    bench.run_method("egan", 0, _args(epochs=2.0), _net, None, out)
    assert fake.calls == []
    with pytest.raises(SystemExit, match="other settings .*egan_gamma"):
        bench.run_method("egan", 0, _args(egan_gamma=0.1), _net, None, out)


def test_the_minutes_cap_stops_a_run_and_says_so(tmp_path, fake):
    # 0.1 s a step: 312 steps are 31.2 s, so a 0.5-minute cap stops after the first piece.
    curve, _ = bench.run_method("dcgan_nd", 0, _args(minutes=0.5), _net, None, str(tmp_path))
    assert fake.calls == [312] and curve["stopped_by"] == "minutes"
    assert curve["points"][-1]["d_updates"] == 3 * 312 and "logs" not in curve["points"][-1]


def test_the_flop_model_counts_each_phase():
    # G and D of one FLOP per image forward: counts in images x passes.
    flops = cost.flop_model(1, 1, b=64, fitness=256)
    assert flops["dcgan_step"] == 64 + 128 * 3 + 64 * 2 + 64 * 2  # 704
    assert flops["d_steps"] == 2 * (64 + 128 * 3)
    assert flops["real_grad"] == 128 * 3
    assert flops["children"] == 3 * (64 + 64 * 2 + 64 * 2)
    assert flops["fitness"] == 3 * (256 + 256 * 3)
    # The fitness alone is over 4x a DCGAN step: 3.5x cannot be reached at batch 256.
    assert flops["fitness"] / flops["dcgan_step"] > 4
