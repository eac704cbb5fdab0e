r"""Training throughput (images/s) of our DCGAN step next to the peers, input pipeline, memory.

    .venv/bin/python benchmarks/throughput.py --quick        # 64x64 batch 128, minutes
    .venv/bin/python benchmarks/throughput.py                # 32/64, batch 64/128/256, all
    .venv/bin/python benchmarks/throughput.py --sizes=128 --batches=64 --variants=bf16
    .venv/bin/python benchmarks/throughput.py --memory_steps=1000   # RSS over a long run

Ours: DCGAN.fit (the train binary's loop, with its per-step TrainLogger callback) on a
random batch, the peers' architecture (base_width=64, i.e. ngf=ndf=64, z=100, 3 channels), in variants f32,
f32+xla, bf16 (mixed_bfloat16), bf16+xla; each its own process, timed as the median
images/s of --windows windows (fit epochs) of --window_steps steps after warm-up. Peers: the scripts in
../shared/peers (Keras plain/JIT/BF16, PyTorch f32/BF16), run in the same invocation.
A name ending in @Nt (bf16@1t, torch_bf16@1t) runs with N CPU threads: on a machine that
others load, a 2-thread OpenMP peer can lose 3x to spin-waiting.

Each training row is also set against the bound of its step: the products of one
training image (counted from our step's graph, `step_profile.train_step_products`: 2.27
GFLOP at 64x64 for this architecture; the peers compute the same products) times its
images/s, over the peak of one large matmul in its dtype (bfloat16 for the bf16 rows,
float32 otherwise) measured by `step_profile.matmul_peak` in a process with the same
threads right after it ("of the peak"). Where the rest of a step's time goes:
benchmarks/step_profile.py.

On a shared machine other processes take a varying share of the cores. Each row says how
many cores the rest of the machine kept busy while it ran ("other cores busy") and the
1-minute load; with --rounds=R ours and the peers are measured R times, in alternating
order, and each row is its best round (the least disturbed; the median of the rounds'
images/s and fractions of the peak beside it: on a VM whose speed swings from run to run,
the typical run). Ratios are to the best peer of the same size and batch. Input pipeline
rows time pipeline.train_dataset alone, from a folder of JPEG/PNG files written to a temporary
directory and from the Fashion-MNIST IDX files, as a multiple of our best training rate,
with the CPU time they take per image (all threads; steadier than img/s under load).
PyTorch peers need `.venv/bin/pip install torch==2.13.0`; without it they are skipped.
"""
import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Measure the checkout this script is in (not whichever dcgan_keras is installed).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, "..", "..", "shared", "peers")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
VARIANTS = ("f32", "f32+xla", "bf16", "bf16+xla")
GPU_VARIANTS = ("f16", "f16+xla")  # mixed float16 with loss scaling: GPUs (gpu_check.sh)
PEERS = {  # name -> (script, extra environment)
    "keras": ("peer_keras.py", {}),
    "keras_jit": ("peer_keras.py", {"JIT": "1"}),
    "keras_bf16": ("peer_keras.py", {"BF16": "1"}),
    "keras_jit_bf16": ("peer_keras.py", {"JIT": "1", "BF16": "1"}),
    "torch": ("peer_torch.py", {}),
    "torch_bf16": ("peer_torch.py", {"BF16": "1"}),
}
QUICK = dict(sizes="64", batches="128", variants="bf16,bf16@1t",
             peers="keras_bf16,torch_bf16,torch_bf16@1t", windows=3, window_steps=2,
             peer_steps=4, pipeline_files=512)


# --- Pure helpers (tested in tests/benchmarks) ---

def variant_precision(variant):
    """'bf16+xla' -> 'bfloat16', 'f16' -> 'float16' (GPUs, with loss scaling), else 'none'."""
    for prefix, precision in (("bf16", "bfloat16"), ("f16", "float16")):
        if variant.startswith(prefix):
            return precision
    return "none"


def split_threads(name):
    """'bf16@1t' -> ('bf16', 1): a variant or peer run with 1 CPU thread; 'bf16' -> (.., None)."""
    match = re.fullmatch(r"(.+)@(\d+)t", name)
    return (match.group(1), int(match.group(2))) if match else (name, None)


def thread_env(threads):
    """Environment that caps TensorFlow's (and OpenMP's) threads, or {} for the default."""
    if not threads:
        return {}
    return {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": str(threads), "PEER_THREADS": str(threads)}


def parse_rate(text):
    """The last `img_per_s=N` (peers) in a process's output, or None."""
    found = re.findall(r"img_per_s=([0-9.]+)", text)
    return float(found[-1]) if found else None


def summarize(rates):
    """Median and spread of per-window rates."""
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "windows": len(rates)}


def add_ratios(rows):
    """Sets row["vs_best_peer"] = rate / best peer rate of the same (size, batch) for
    training rows (kind "ours" or "peer")."""
    best = {}
    for row in rows:
        if row["kind"] == "peer" and row.get("rate"):
            key = (row["size"], row["batch"])
            best[key] = max(best.get(key, 0.0), row["rate"])
    for row in rows:
        peer = best.get((row["size"], row["batch"]))
        training = row["kind"] in ("ours", "peer")
        row["vs_best_peer"] = row["rate"] / peer if training and peer and row.get("rate") else None
    return rows


def peak_dtype(name):
    """The matmul dtype whose peak bounds a training row: bfloat16 for our bf16 variants
    and the bf16 peers, float32 otherwise ('ours bf16@1t', 'peer torch_bf16' -> bfloat16)."""
    base = split_threads(name.split()[-1])[0]
    return "bfloat16" if base.startswith("bf16") or base.endswith("bf16") else "float32"


def add_peak_fraction(row, flops_per_image, peak_flops):
    """row["of_peak"]: the share of the in-run matmul peak the row's images/s reach, at
    flops_per_image (our step's products, counted from its graph) per image."""
    row["peak_gflops"] = peak_flops / 1e9 if peak_flops else None
    row["of_peak"] = (row["rate"] * flops_per_image / peak_flops
                      if row.get("rate") and flops_per_image and peak_flops else None)
    return row


def combine_rounds(rows):
    """One row per (kind, name, size, batch): the round with the highest rate (the one
    least slowed by other processes; both sides get the same treatment), with
    `rounds` (every round's rate), `round_median` and `of_peak_median` (the median of the
    rounds' fractions of the peak: on a VM whose speed swings, the typical run)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["kind"], row["name"], row["size"], row["batch"]), []).append(row)
    combined = []
    for group in groups.values():
        rates = [r["rate"] for r in group if r.get("rate")]
        fractions = [r["of_peak"] for r in group if r.get("of_peak")]
        best = max(group, key=lambda r: r.get("rate") or 0.0)
        combined.append(dict(best, rounds=rates,
                             round_median=statistics.median(rates) if rates else None,
                             of_peak_median=(statistics.median(fractions) if fractions
                                             else None)))
    return combined


def markdown_table(rows, columns):
    """rows: dicts; columns: (header, key, format). Missing values print as '-'."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "-"
                 for _, key, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- Children: one measurement per process ---

def run_child(cmd, env=None):
    """Runs cmd; returns (output, exit code, peak RSS in MiB of that very process)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})), cwd=os.path.dirname(HERE))
    out = proc.stdout.read()  # until the child closes it
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, proc.returncode, usage.ru_maxrss / 1024


def result_line(payload):
    print("RESULT " + json.dumps(payload), flush=True)


def parse_result(text):
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


def time_ours(size, batch, variant, windows, window_steps, steps_per_execution):
    """Child: images/s of our training loop, `DCGAN.fit` with the train binary's per-step
    callback (TrainLogger), on one random batch (no input pipeline). Each window is one
    fit epoch of `window_steps` steps, timed from its begin to its end."""
    import io

    import keras
    import tensorflow as tf
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.models import build_dcgan
    from dcgan_keras.training import monitoring, train_lib

    variant = split_threads(variant)[0]
    mixed = variant_precision(variant)
    keras.utils.set_random_seed(0)
    with train_lib.dtype_policy(train_lib.POLICIES[mixed]):
        gan = build_dcgan(image_size=size, channels=3, z_dim=100, base_width=64)
        gan.compile(*train_lib.make_optimizers(TrainConfig(), mixed),
                    jit_compile="xla" in variant, steps_per_execution=steps_per_execution)
    real = tf.random.uniform([batch, size, size, 3], -1.0, 1.0)
    data = tf.data.Dataset.from_tensors(real).repeat().prefetch(2)
    seconds, cpu_seconds = [], []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu = time.perf_counter(), sum(os.times()[:2])

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)
            cpu_seconds.append(sum(os.times()[:2]) - self.cpu)

    steps = max(1, window_steps // steps_per_execution) * steps_per_execution
    logger = monitoring.TrainLogger(batch, log_every=TrainConfig().log_every,
                                    stream=io.StringIO())
    # Epoch 1 traces (and XLA-compiles), epoch 2 warms up, then the timed windows.
    gan.fit(data, epochs=windows + 2, steps_per_epoch=steps, verbose=0, shuffle=False,
            callbacks=[Timer(), logger])
    rates = [batch * steps / s for s in seconds[2:]]
    # CPU time per image (all threads): steadier than img/s when others share the cores.
    cpu_us = 1e6 * sum(cpu_seconds[2:]) / (batch * steps * len(rates))
    result_line(dict(summarize(rates), first_call_s=seconds[0], cpu_us=cpu_us))


def time_peak(dtype):
    """Child: FLOP/s of a large matmul in `dtype` with this process's threads."""
    import step_profile
    result_line({"peak": step_profile.matmul_peak(dtype)})


def count_flops(size, batch):
    """Child: FLOPs per image of our training step (the products that run)."""
    import step_profile
    gan = step_profile.build(size, batch, "none")
    flops = sum(f for f, _ in step_profile.train_step_products(gan, batch, size).values())
    result_line({"flops_per_image": flops / batch})


def make_image_folder(directory, count, side):
    """count smooth random RGB images side x side, half JPEG and half PNG."""
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
        image = tf.image.resize(coarse[None], [side, side], method="bicubic")[0]
        image = tf.cast(tf.clip_by_value(image + rng.normal(0, 8, (side, side, 3)), 0, 255),
                        tf.uint8)
        data = tf.io.encode_jpeg(image, quality=90) if i % 2 else tf.io.encode_png(image)
        tf.io.write_file(os.path.join(directory, f"{i:06d}.{'jpg' if i % 2 else 'png'}"),
                         data)


def make_lmdb_of_folder(directory, count, side):
    """The files of make_image_folder as values of directory/bedroom_train_lmdb, keyed by
    name (half JPEG, half PNG: the folder pipeline's bytes exactly)."""
    import lmdb
    folder = os.path.join(directory, "files")
    os.makedirs(folder)
    make_image_folder(folder, count, side)
    env = lmdb.open(os.path.join(directory, "bedroom_train_lmdb"), map_size=1 << 34)
    with env.begin(write=True) as txn:
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                txn.put(name.encode(), f.read())
    env.close()


def time_pipeline(source_kind, size, batch, windows, window_batches, files, file_side):
    """Child: images/s of pipeline.train_dataset alone (decode, preprocess, batch)."""
    from dcgan_keras.data import cache, datasets, pipeline
    with tempfile.TemporaryDirectory() as tmp:
        if source_kind in ("folder", "folder_cached"):
            make_image_folder(tmp, files, file_side)
            source = datasets.get_source("folder", data_dir=tmp, allow_download=False,
                                         index_cache=os.path.join(tmp, "index.json"))
            if source_kind == "folder_cached":  # --cache_images: decoded once, up front
                source = cache.cached_source(source, size, 3)
        elif source_kind == "lsun_lmdb":  # the folder's files as values of an LSUN LMDB
            make_lmdb_of_folder(tmp, files, file_side)
            source = datasets.get_source("lsun", data_dir=tmp,
                                         index_cache=os.path.join(tmp, "index.json"))
        else:
            source = datasets.get_source("fashion_mnist", data_dir=FMNIST_DIR,
                                         allow_download=False)
        iterator = iter(pipeline.train_dataset(source, size, 3, batch, seed=0))
        for _ in range(3):
            next(iterator)
        rates = []
        cpu = sum(os.times()[:2])
        for _ in range(windows):
            start = time.perf_counter()
            for _ in range(window_batches):
                next(iterator).numpy()
            rates.append(batch * window_batches / (time.perf_counter() - start))
        # CPU time per image (all threads): steadier than img/s when others share the cores.
        cpu_us = 1e6 * (sum(os.times()[:2]) - cpu) / (batch * window_batches * windows)
    result_line(dict(summarize(rates), cpu_us=cpu_us))


def time_memory(size, batch, variant, steps, log_every):
    """Child: RSS at every log step of a long train_and_evaluate run on Fashion-MNIST."""
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.training import monitoring, train_lib
    samples = []

    class Recorder(monitoring.Progress):
        def update(self, step, logs=None, images_per_sec=None):
            super().update(step, logs, images_per_sec)
            samples.append((step, rss_mib()))

    monitoring.Progress = Recorder  # what TrainLogger prints through
    config = TrainConfig(dataset="fashion_mnist", data_dir=FMNIST_DIR, image_size=size,
                         channels=3, base_width=64, batch_size=batch, max_steps=steps,
                         log_every=log_every, checkpoint_every=max(steps // 4, 1),
                         mixed_precision=variant_precision(variant),
                         jit_compile="true" if "xla" in variant else "false",
                         allow_download=False)
    with tempfile.TemporaryDirectory() as workdir:
        train_lib.train_and_evaluate(config, workdir)
    result_line({"samples": samples})


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- The driver ---

def cpu_seconds_busy():
    """Machine-wide busy CPU seconds so far (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def measure(cmd, env=None):
    """Runs one child; returns its RESULT plus peak RSS, load and others' CPU use."""
    load = os.getloadavg()[0]
    busy, wall = cpu_seconds_busy(), time.monotonic()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out, code, rss = run_child(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    wall = time.monotonic() - wall
    others = max(0.0, (cpu_seconds_busy() - busy - own) / wall)
    info = {"rss_mib": rss, "load": load, "others_cores": others, "exit": code}
    result = parse_result(out)
    if result is None:
        rate = parse_rate(out)
        result = {"median": rate} if rate is not None else None
    if result is None or code:
        sys.stderr.write(f"FAILED ({code}): {' '.join(cmd)}\n{out[-2000:]}\n")
        return dict(info, rate=None)
    return dict(info, **result, rate=result.get("median"))


def child_cmd(args, *child):
    return [sys.executable, os.path.abspath(__file__), "--child", *map(str, child),
            f"--windows={args.windows}", f"--window_steps={args.window_steps}",
            f"--steps_per_execution={args.steps_per_execution}",
            f"--pipeline_files={args.pipeline_files}",
            f"--pipeline_file_side={args.pipeline_file_side}",
            f"--memory_log_every={args.memory_log_every}"]


def peer_cmd(script):
    """Runs a peer script; with PEER_THREADS set, os.cpu_count() reads that number (the
    PyTorch peer sizes its thread pool from it)."""
    code = ("import os, runpy; n = os.environ.get('PEER_THREADS'); "
            "os.cpu_count = (lambda: int(n)) if n else os.cpu_count; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    return [sys.executable, "-c", code]


def torch_available():
    code = "import importlib.util,sys; sys.exit(importlib.util.find_spec('torch') is None)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def machine_description():
    from dcgan_keras.utils.cpu import AMX_SWITCH, cpu_flags, cpu_model
    model, flags = cpu_model() or platform.processor(), cpu_flags()
    from importlib import metadata
    versions = []
    for package in ("tensorflow", "keras", "torch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    units = "/".join(sorted(flags & {"amx_bf16", "avx512_bf16", "avx512f"})) or "no AVX-512"
    # Runs with AMX hidden (a CPU without it, on one that has it) say so.
    hidden = [f"{name}={os.environ[name]}" for name in (AMX_SWITCH, "ONEDNN_MAX_CPU_ISA")
              if os.environ.get(name)]
    units += "; " + ", ".join(hidden) if hidden else ""
    return f"{model}, {os.cpu_count()} cores ({units}); {', '.join(versions)}"


COLUMNS = [("what", "name", "{}"), ("size", "size", "{}"), ("batch", "batch", "{}"),
           ("img/s", "rate", "{:.1f}"), ("window min", "min", "{:.1f}"),
           ("window max", "max", "{:.1f}"), ("median of rounds", "round_median", "{:.1f}"),
           ("vs best peer", "vs_best_peer", "{:.2f}x"),
           ("peak GFLOP/s", "peak_gflops", "{:.0f}"), ("of the peak", "of_peak", "{:.2f}"),
           ("of the peak, median of rounds", "of_peak_median", "{:.2f}"),
           ("x training", "x_training", "{:.1f}x"), ("peak RSS MiB", "rss_mib", "{:.0f}"),
           ("load 1m", "load", "{:.1f}"), ("other cores busy", "others_cores", "{:.2f}"),
           ("CPU us/img", "cpu_us", "{:.0f}")]


def run_grid(args):
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    peers = [p for p in args.peers.split(",") if p]
    unknown = (sorted({split_threads(v)[0] for v in variants} - set(VARIANTS + GPU_VARIANTS))
               + sorted({split_threads(p)[0] for p in peers} - set(PEERS)))
    if unknown:
        sys.exit(f"unknown variants/peers {unknown}; variants: {VARIANTS}, peers: {list(PEERS)}")
    torch_peers = [p for p in peers if PEERS[split_threads(p)[0]][0] == "peer_torch.py"]
    if torch_peers and not torch_available():
        print("PyTorch is not installed: skipping the PyTorch peers "
              "(.venv/bin/pip install torch==2.13.0 to include them)")
        peers = [p for p in peers if p not in torch_peers]
    if peers and not os.path.isdir(args.peers_dir):
        print(f"no peers at {args.peers_dir}: skipping them (--peers_dir)")
        peers = []
    rows = []
    flops = {(size, batch): measure(child_cmd(args, "flops", size, batch)).get(
        "flops_per_image") for size in sizes for batch in batches}
    for round_ in range(args.rounds):
        for size in sizes:
            for batch in batches:
                jobs = [("ours", v) for v in variants] + [("peer", p) for p in peers]
                if round_ % 2:  # alternate the order: neither side always runs first
                    jobs.reverse()
                for kind, name in jobs:
                    row = (measure_ours(args, size, batch, name) if kind == "ours"
                           else measure_peer(args, size, batch, name))
                    row = dict(row, kind=kind, name=f"{kind} {name}", size=size,
                               batch=batch, round=round_)
                    # The bound of this row: the matmul peak right after it, same threads.
                    peak = measure(child_cmd(args, "peak", peak_dtype(row["name"])),
                                   thread_env(split_threads(name)[1])).get("peak")
                    rows.append(add_peak_fraction(row, flops[(size, batch)], peak))
                    print(f"round {round_}: {kind} {name} {size}x{size} batch {batch}: "
                          f"{row.get('rate')} img/s, {row['of_peak'] or 0:.2f} of the "
                          f"{peak_dtype(row['name'])} peak (others busy "
                          f"{row['others_cores']:.2f} cores)", flush=True)
    rows = combine_rounds(rows)
    for size in sizes:
        for batch in batches:
            best_ours = max([r["rate"] for r in rows if r["kind"] == "ours" and r["rate"]
                             and (r["size"], r["batch"]) == (size, batch)], default=None)
            for kind in [k for k in args.pipelines.split(",") if k]:
                row = measure(child_cmd(args, "pipeline", kind, size, batch))
                x = row["rate"] / best_ours if best_ours and row.get("rate") else None
                rows.append(dict(row, kind="pipeline", name=f"input pipeline {kind}",
                                 size=size, batch=batch, x_training=x))
                print(f"pipeline {kind} {size}x{size} batch {batch}: {row.get('rate')}",
                      flush=True)
    return add_ratios(rows)


def measure_ours(args, size, batch, variant):
    return measure(child_cmd(args, "ours", size, batch, variant),
                   thread_env(split_threads(variant)[1]))


def measure_peer(args, size, batch, peer):
    base, threads = split_threads(peer)
    script, env = PEERS[base]
    env = dict(env, **thread_env(threads), RES=str(size), BATCH=str(batch),
               STEPS=str(args.peer_steps))
    return measure(peer_cmd(os.path.join(args.peers_dir, script)), env)


def run_memory(args):
    variant = args.variants.split(",")[0]
    cmd = child_cmd(args, "memory", args.memory_size, args.memory_batch, variant,
                    args.memory_steps)
    row = measure(cmd)
    samples = row.get("samples") or []
    if not samples:
        sys.exit("the memory run failed")
    warm = [rss for step, rss in samples if step >= args.memory_steps // 10] or [samples[0][1]]
    growth = samples[-1][1] - warm[0]
    print(f"RSS over {args.memory_steps} steps of {args.memory_size}x{args.memory_size} batch "
          f"{args.memory_batch} ({variant}, train_and_evaluate on Fashion-MNIST):")
    print("  " + ", ".join(f"step {s}: {r:.0f}" for s, r in samples[::max(1, len(samples) // 12)]))
    print(f"  after warm-up (step {args.memory_steps // 10}): {warm[0]:.0f} MiB; "
          f"final: {samples[-1][1]:.0f} MiB; peak: {row['rss_mib']:.0f} MiB; growth "
          f"{growth:+.0f} MiB -> {'no growth' if growth < args.memory_tolerance else 'GROWS'}"
          f" (tolerance {args.memory_tolerance} MiB); load {row['load']:.1f}")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="32,64", help="comma list; 128 when asked")
    parser.add_argument("--batches", default="64,128,256")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--pipelines", default="folder,folder_cached,lsun_lmdb,idx",
                        help="'' to skip; folder_cached = the folder with --cache_images; "
                        "lsun_lmdb = the folder's files as values of an LSUN LMDB")
    parser.add_argument("--quick", action="store_true", help="; ".join(
        f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window_steps", type=int, default=4)
    parser.add_argument("--steps_per_execution", type=int, default=1)
    parser.add_argument("--peer_steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat ours and the peers, alternating; report the best round")
    parser.add_argument("--peers_dir", default=os.path.normpath(PEERS_DIR))
    parser.add_argument("--pipeline_files", type=int, default=2048)
    parser.add_argument("--pipeline_file_side", type=int, default=128)
    parser.add_argument("--memory_steps", type=int, default=0,
                        help="if set: only the long-run memory check")
    parser.add_argument("--memory_size", type=int, default=64)
    parser.add_argument("--memory_batch", type=int, default=128)
    parser.add_argument("--memory_log_every", type=int, default=50)
    parser.add_argument("--memory_tolerance", type=float, default=64.0)
    parser.add_argument("--out", default="", help="write the rows as JSON here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    if parser.parse_known_args()[0].quick:  # QUICK values, unless given on the command line
        parser.set_defaults(**QUICK)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "ours":
            return time_ours(int(rest[0]), int(rest[1]), rest[2], args.windows,
                             args.window_steps, args.steps_per_execution)
        if kind == "peak":
            return time_peak(rest[0])
        if kind == "flops":
            return count_flops(int(rest[0]), int(rest[1]))
        if kind == "pipeline":
            return time_pipeline(rest[0], int(rest[1]), int(rest[2]), args.windows,
                                 max(4, args.window_steps * 4), args.pipeline_files,
                                 args.pipeline_file_side)
        return time_memory(int(rest[0]), int(rest[1]), rest[2], int(rest[3]),
                           args.memory_log_every)
    print(f"machine: {machine_description()}")
    print(f"command: {' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.memory_steps:
        rows = [run_memory(args)]
    else:
        rows = run_grid(args)
        print()
        print(markdown_table(rows, COLUMNS))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
