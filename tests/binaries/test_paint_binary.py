"""`analyze paint` end to end on a tiny shapes run of the train binary: it dissects on the
fly, serves on 127.0.0.1, answers edits whose record replays through the library from the
workdir, and stops on Ctrl-C; a workdir without a checkpoint, a taken port and the
dissection of another model are each one clear line and exit status 2."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from testutil import REPO

SIZE = 16


@pytest.fixture
def workdir(shapes_workdir):
    return shapes_workdir


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell does for `cmd &`


def _paint(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    # Started with SIGINT ignored, as in a background job: Ctrl-C must still stop it.
    return subprocess.Popen([sys.executable, "-m", "dcgan_keras.binaries.analyze", "paint",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=env, preexec_fn=_ignore_sigint)


def _json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def test_paint_serves_and_its_record_replays(workdir):
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis.dissect.paint import edits, launch
    proc = _paint(f"--workdir={workdir}", "--port=0", "--num_dissect=40",
                  "--layers=block1_relu", "--num_units=3")
    try:
        deadline, line = time.time() + 240, ""
        while "serving" not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert line.startswith("paint: serving http://127.0.0.1:"), proc.stderr.read()[-3000:]
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert "Paint with units" in page.read().decode()
        info = _json(url + "api/info")
        assert list(info["layers"]) == ["block1_relu"] and info["image_size"] == SIZE
        concept = info["layers"]["block1_relu"]["concepts"][0]
        assert len(concept["units"]) == len(concept["iou"]) == 3
        answer = _json(url + "api/edit", {"seed": 7, "edits": [
            {"concept": concept["name"], "mode": "add", "region": {"box": [0, 0, 8, 16]}},
            {"concept": concept["name"], "mode": "remove", "region": {"box": [4, 4, 12, 12]}}]})
        shown = tf.io.decode_png(base64.b64decode(answer["image"])).numpy()
        assert not np.array_equal(shown, tf.io.decode_png(base64.b64decode(
            answer["original"])).numpy())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "paint: stopped serving" in out, err[-3000:]
    # The downloaded record replays through the library, from the workdir, exactly.
    generator = workdir_lib.networks_from_workdir(workdir).generator
    record = json.loads(json.dumps(answer["record"]))
    np.testing.assert_array_equal(edits.replay(generator, record), shown)
    # The dissection it ran is in the workdir, marked as this generator's.
    dissect = json.load(open(os.path.join(workdir, "dissection", "dissect.json")))
    assert dissect["generator_fingerprint"] == launch.fingerprint(generator)
    assert dissect["samples"] == 40 and list(dissect["layers"]) == ["block1_relu"]


def test_bad_input_is_one_clear_line(workdir, tmp_path):
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis import outputs
    from dcgan_keras.analysis.dissect import dissection, segmenters
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    shutil.copy(os.path.join(workdir, "config.json"), no_checkpoint)
    other = outputs.untrained_copy(workdir_lib.networks_from_workdir(workdir).generator, seed=3)
    z = np.random.default_rng(0).standard_normal([8, 8]).astype(np.float32)
    dissection.run(other, segmenters.load("shapes"), str(tmp_path / "other"), z,
                   ["block1_relu"], num_units=2, num_examples=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        procs = [  # in parallel: each is mostly TensorFlow's start-up
            (_paint(f"--workdir={no_checkpoint}", "--port=0"),
             f"error: no latest checkpoint in {no_checkpoint}/checkpoints; train first"),
            (_paint(f"--workdir={workdir}", f"--port={port}"),
             f"error: cannot serve on 127.0.0.1:{port}: Address already in use; pick another "
             "--port"),
            (_paint(f"--workdir={workdir}", "--port=0", f"--dissection={tmp_path / 'other'}"),
             f"error: {tmp_path / 'other'} is the dissection of another model (generator "
             "weights")]
        for proc, message in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 2, err[-3000:]
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(message), err[-3000:]
            assert "serving" not in out
