"""Runs the README's commands, in the README's order, on tiny settings: `make docs-check`.

Each `python -m dcgan_keras.binaries.*` command of README.md runs as written, in a scratch
directory (so `runs/...` lands there), with `~` pointing at a scratch home that holds a
small image folder (`~/faces`) and small LMDBs in LSUN's layout (`~/lsun`), and with flags
appended that make it tiny (few steps, narrow nets, few samples; absl takes the last value
of a flag). The README's Python blocks run too, in order. Commands that need a network,
a cluster, a TPU or Inception's weights are parsed with the binary's flags instead, and
said so. Exits non-zero when any command fails.

    python tools/docs_check.py [--keep=DIR] [--only=REGEX]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docs_commands  # noqa: E402

REPO = docs_commands.REPO
# Appended to every command of a binary (a verb of analyze has its own line).
TINY = {
    "train": ["--max_steps=3", "--batch_size=16", "--base_width=8", "--log_every=1",
              "--checkpoint_every=3", "--num_sample_images=4", "--egan_fitness_batch=16",
              "--eval_num_samples=64"],
    "export": [],
    "sample": [],
    "evaluate": ["--draws=1", "--labels_per_class=10", "--val_size=100",
                 "--max_train_examples=2000", "--max_test_examples=200",
                 "--baselines=raw_pixels", "--trials=1", "--num_samples=128"],
    "train_classifier": ["--epochs=1", "--max_examples=512"],
    "dedup": ["--epochs=1", "--steps_per_epoch=2", "--batch_size=32"],
    "analyze walk": ["--num_walks=2", "--steps=3"],
    "analyze arithmetic": [],
    "analyze guided_backprop": ["--num_images=64", "--top_k=2", "--units=0,1"],
    "analyze neighbors": ["--num_samples=2", "--max_train=500"],
    "analyze forget": ["--num_annotated=20", "--num_new=4"],
    "analyze dissect": ["--num_dissect=32", "--num_intervene=8"],
}
PARSE_ONLY = [  # (reason, test on the command's arguments)
    ("needs a cluster or a Cloud bucket", lambda a: any("gs://" in x for x in a)),
    ("needs a TPU", lambda a: "--strategy=tpu" in a),
    ("downloads a tensorflow-datasets dataset",
     lambda a: any(x in a for x in ("--dataset=svhn", "--dataset=celeb_a", "--dataset=cifar10",
                                    "--dataset=imagenet32", "--dataset=imagenet64"))),
    ("needs Inception's weights file", lambda a: "--feature_net=inception" in a),
    ("needs a shapes model trained for minutes to draw squares; tests/analysis run forget "
     "on a planted generator", lambda a: a[:1] == ["forget"]),
    ("serves a web page (tests/analysis cover it over HTTP and in Chromium)",
     lambda a: a[:1] == ["paint"]),
]
PLACEHOLDERS = {"W": "runs/fmnist", "D": "runs/out"}


def make_home(home):
    """A scratch home with ~/faces (PNG folder) and ~/lsun (bedroom, church_outdoor)."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from testutil import make_lsun_lmdb, smooth_image  # noqa: PLC0415
    from dcgan_keras.utils.images import write_png  # noqa: PLC0415
    faces = os.path.join(home, "faces")
    os.makedirs(faces)
    for i in range(48):
        write_png(os.path.join(faces, f"{i:03d}.png"), smooth_image(40, 48, seed=i))
    for category in ("bedroom", "church_outdoor"):
        make_lsun_lmdb(os.path.join(home, "lsun"), category, num=48, seed=len(category))
        make_lsun_lmdb(os.path.join(home, "lsun"), category, split="val", num=16, seed=7)


def python_blocks(path="README.md"):
    """(line, code) of each ```python block; the whole-run example is left out (5 epochs)."""
    text = open(os.path.join(REPO, path), encoding="utf-8").read()
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        if "train_and_evaluate" not in match.group(1):
            yield text[:match.start()].count("\n") + 1, match.group(1)


def runnable(command):
    """(argv, None) to run `command`, or (None, reason) to only parse it."""
    args = []
    for arg in command.plain_args:
        name, equals, value = arg.partition("=")
        args.append(name + equals + PLACEHOLDERS.get(value, value))
    for reason, test in PARSE_ONLY:
        if test(command.args):
            return None, reason
    key = command.target + (f" {args[0]}" if command.target == "analyze" else "")
    return ([sys.executable, "-m", f"dcgan_keras.binaries.{command.target}"] + args +
            TINY.get(key, [])), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--only", help="run only commands matching this regex")
    options = parser.parse_args()
    root = options.keep or tempfile.mkdtemp(prefix="docs_check_")
    os.makedirs(root, exist_ok=True)
    home = os.path.join(root, "home")
    if not os.path.isdir(home):
        make_home(home)
    env = dict(os.environ, HOME=home, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    steps = [(c.line, c) for c in docs_commands.commands(["README.md"]) if c.kind == "binary"]
    steps += list(python_blocks())
    failures, parsed = 0, []
    for line, step in sorted(steps, key=lambda s: s[0]):
        if isinstance(step, str):
            name, argv, reason = f"python block at README.md:{line}", \
                [sys.executable, "-c", step], None
        else:
            name = f"README.md:{line} {step.target} {' '.join(step.args)}"
            argv, reason = runnable(step)
        if options.only and not re.search(options.only, name):
            continue
        if argv is None:
            parsed.append(step)
            print(f"parse  {name}  ({reason})", flush=True)
            continue
        start = time.time()
        result = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                                timeout=900)
        status = "ok   " if result.returncode == 0 else "FAIL "
        print(f"{status}  {time.time() - start:5.1f}s  {name}", flush=True)
        if result.returncode:
            failures += 1
            print("       " + "\n       ".join((result.stdout + result.stderr)
                                               .strip().splitlines()[-15:]), flush=True)
    by_binary = {}
    for c in parsed:
        by_binary.setdefault(c.target, []).append(c.args)
    for name, arg_lists in by_binary.items():
        for args, message in docs_commands.probe(name, arg_lists)["errors"]:
            failures += 1
            print(f"FAIL   parse {name} {' '.join(args)}: {message}")
    if not options.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"docs-check: {failures} failed" if failures else "docs-check: every command ran")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
