r"""Response time of the paint server (analyze paint) for a 64x64 shapes model, over HTTP.

    flock /tmp/dcgan_cpu.lock python benchmarks/paint_speed.py \
        [--workdir=runs/paint_bench/shapes64] [--requests=30]

Trains the model first if the workdir has no checkpoint (the paper's 64x64 G, widths
512-256-128-64 at --base_width=64... a few steps: speed does not depend on training),
dissects every conv layer on --num_dissect samples, then serves on 127.0.0.1 in this
process and times POST /api/edit from a client: per layer, a one-edit and a five-edit
request, sequentially, and four clients at once. Prints one line per case and a JSON
summary (docs/benchmarks.md, "Paint with units").
"""
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from absl import app, flags

flags.DEFINE_string("workdir", "runs/paint_bench/shapes64", "The 64x64 shapes workdir.")
flags.DEFINE_integer("train_steps", 20, "Training steps when the workdir has no checkpoint.")
flags.DEFINE_integer("base_width", 64, "G/D width when training.")
flags.DEFINE_integer("num_dissect", 200, "Samples dissected.")
flags.DEFINE_integer("requests", 30, "Timed requests per case.")
FLAGS = flags.FLAGS


def _post(url, body):
    data = json.dumps(body).encode()
    start = time.perf_counter()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        answer = json.loads(r.read())
    return 1000 * (time.perf_counter() - start), answer


def _stats(ms):
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 1),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1), "max_ms": round(ms[-1], 1)}


def _train(workdir):
    subprocess.run([sys.executable, "-m", "dcgan_keras.binaries.train", "--dataset=shapes",
                    f"--workdir={workdir}", "--image_size=64", "--channels=3",
                    f"--base_width={FLAGS.base_width}", f"--max_steps={FLAGS.train_steps}",
                    "--batch_size=32", "--cache_images=false", "--mixed_precision=none"],
                   check=True)


def main(_):
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis.dissect import segmenters
    from dcgan_keras.analysis.dissect.paint import edits, launch, server
    from dcgan_keras.exporters import sampling
    if not os.path.exists(os.path.join(FLAGS.workdir, "checkpoints")):
        _train(FLAGS.workdir)
    g = workdir_lib.networks_from_workdir(FLAGS.workdir).generator
    seg = segmenters.load("shapes")
    layers = list(g.conv_layer_names)
    result = launch.dissection_for(g, seg, os.path.join(FLAGS.workdir, "dissection"),
                                   sampling.latents(FLAGS.num_dissect, 0, g.z_dim, g.z_distribution).numpy(),
                                   layers, num_units=20, num_examples=2)
    painter = edits.Painter(g, result, seg, num_units=20)
    httpd = server.bind("127.0.0.1", 0, painter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = httpd.url + "api/edit"
    size, summary = g.image_size, {}
    for layer in layers:
        concept = painter.layers[layer][0]["name"]
        one = {"concept": concept, "mode": "remove",
               "region": {"box": [size // 4, size // 4, 3 * size // 4, 3 * size // 4]}}
        five = [dict(one, mode=("add", "remove")[i % 2], region={"box": [
            8 * i, 8 * i, 8 * i + size // 2, 8 * i + size // 2]}) for i in range(5)]
        for name, edit_list in (("1 edit", [one]), ("5 edits", five)):
            body = lambda seed: {"seed": seed, "layer": layer, "edits": edit_list}  # noqa: E731
            _post(url, body(0))  # traces this layer's functions
            ms = [_post(url, body(s))[0] for s in range(FLAGS.requests)]
            server_ms = [_post(url, body(s))[1]["ms"] for s in range(5)]
            summary[f"{layer}, {name}"] = dict(_stats(ms), server_ms=statistics.median(
                server_ms))
            print(f"{layer} ({painter.info()['layers'][layer]['grid']}x"
                  f"{painter.info()['layers'][layer]['grid']}), {name}: {summary[f'{layer}, {name}']}",
                  flush=True)
    layer = painter.default_layer
    one = {"seed": 0, "layer": layer, "edits": [{"concept": painter.layers[layer][0]["name"],
                                                 "mode": "add", "region": {"box": [0, 0, 32, 32]}}]}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        start = time.perf_counter()
        ms = list(pool.map(lambda s: _post(url, dict(one, seed=s))[0],
                           range(4 * FLAGS.requests)))
        wall = time.perf_counter() - start
    summary[f"{layer}, 1 edit, 4 clients at once"] = dict(
        _stats(ms), requests_per_s=round(len(ms) / wall, 1))
    print(f"{layer}, 4 clients at once: {summary[f'{layer}, 1 edit, 4 clients at once']}")
    httpd.shutdown()
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "image_size": size,
                      "base_width": FLAGS.base_width, "cases": summary}, indent=1))


if __name__ == "__main__":
    from dcgan_keras.binaries import common  # noqa: F401  (quiet TensorFlow)
    app.run(main)
