"""Runs the README's and docs/' commands, in their order, on tiny settings: `make docs-check`.

Each `python -m dcgan_keras.binaries.*` command of README.md (then of docs/*.md) runs as
written, in a scratch
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
    # 48: a multiple of E-GAN's 3 D steps x 1 or 2 parents, and of 2 replicas
    "train": ["--max_steps=3", "--batch_size=48", "--base_width=8", "--log_every=1",
              "--checkpoint_every=3", "--num_sample_images=4", "--egan_fitness_batch=16",
              "--eval_num_samples=64"],
    "export": [],
    "sample": [],
    "evaluate": ["--draws=1", "--labels_per_class=10", "--val_size=100",
                 "--max_train_examples=2000", "--max_test_examples=200",
                 "--baselines=raw_pixels", "--trials=1", "--num_samples=128"],
    "train_classifier": ["--epochs=1", "--max_examples=512"],
    "train_segmenter": ["--epochs=1", "--train_scenes=64", "--test_scenes=16"],
    "dedup": ["--epochs=1", "--steps_per_epoch=2", "--batch_size=32"],
    "analyze walk": ["--num_walks=2", "--steps=3"],
    "analyze arithmetic": [],
    "analyze guided_backprop": ["--num_images=64", "--top_k=2", "--units=0,1"],
    "analyze neighbors": ["--num_samples=2", "--max_train=500"],
    "analyze forget": ["--num_annotated=20", "--num_new=4"],
    "train_segmenter": ["--train_scenes=64", "--test_scenes=16", "--epochs=1"],
    "analyze dissect": ["--num_dissect=32", "--num_intervene=8"],
    "analyze paint": ["--port=0", "--num_dissect=32"],
}
SERVERS = ("analyze paint",)  # run until they serve their page, which is fetched, then Ctrl-C
PARSE_ONLY = [  # (reason, test on the command's arguments)
    ("needs a cluster or a Cloud bucket", lambda a: any("gs://" in x for x in a)),
    ("needs a TPU", lambda a: "--strategy=tpu" in a),
    ("downloads a tensorflow-datasets dataset",
     lambda a: any(x in a for x in ("--dataset=svhn", "--dataset=celeb_a", "--dataset=cifar10",
                                    "--dataset=imagenet32", "--dataset=imagenet64"))),
    ("needs Inception's weights file", lambda a: "--feature_net=inception" in a),
    ("needs a shapes model trained for minutes to draw squares; tests/analysis run forget "
     "on a planted generator", lambda a: a[:1] == ["forget"]),
    ("needs a shapes model trained for minutes whose samples show every concept (ACE "
     "optimises over them); tests/analysis/dissect run ACE on a planted generator",
     lambda a: a[:1] == ["dissect"] and "--unit_set=ace" in a),
]
PLACEHOLDERS = {"W": "runs/fmnist", "D": "runs/out", "DIR": "~/faces"}


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


# The pages whose ```python blocks run (the others' show code that needs a real run).
PYTHON_PAGES = ("README.md", "docs/python-api.md")


def python_blocks(path="README.md"):
    """(line, code) of each ```python block; the whole-run example is left out (5 epochs)."""
    text = open(os.path.join(REPO, path), encoding="utf-8").read()
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        if "train_and_evaluate" not in match.group(1):
            yield text[:match.start()].count("\n") + 1, match.group(1)


def runnable(command):
    """(argv, None, serves) to run `command` (serves: it is a server, see `run_server`),
    or (None, reason, False) to only parse it."""
    args = []
    for arg in command.plain_args:
        name, equals, value = arg.partition("=")
        args.append(name + equals + PLACEHOLDERS.get(value, value))
    for reason, test in PARSE_ONLY:
        if test(command.args):
            return None, reason, False
    key = command.target + (f" {args[0]}" if command.target == "analyze" else "")
    return ([sys.executable, "-m", f"dcgan_keras.binaries.{command.target}"] + args +
            TINY.get(key, [])), None, key in SERVERS


def run_server(argv, cwd, env, timeout=600):
    """Starts a command that serves a page, waits for its `serving URL` line, fetches the
    page, then stops it with SIGINT. Returns (ok, output)."""
    import signal  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"serving (http://\S+)", line)
            if found:
                with urllib.request.urlopen(found.group(1), timeout=60) as page:
                    ok = page.status == 200
                proc.send_signal(signal.SIGINT)
                out = proc.communicate(timeout=120)[0]
                return ok and proc.returncode == 0, "".join(lines) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False, "".join(lines) + "(never served its page)"


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
    files = docs_commands.doc_files()  # README.md first, then docs/*.md
    steps = [(files.index(c.path), c.line, c) for c in docs_commands.commands(files)
             if c.kind == "binary"]
    steps += [(files.index(path), line, (path, code)) for path in PYTHON_PAGES
              for line, code in python_blocks(path)]
    failures, parsed = 0, []
    for _, line, step in sorted(steps, key=lambda s: s[:2]):
        if isinstance(step, tuple):
            path, code = step
            name, argv, reason, serves = f"python block at {path}:{line}", \
                [sys.executable, "-c", code], None, False
        else:
            name = f"{step.path}:{line} {step.target} {' '.join(step.args)}"
            argv, reason, serves = runnable(step)
        if options.only and not re.search(options.only, name):
            continue
        if argv is None:
            parsed.append(step)
            print(f"parse  {name}  ({reason})", flush=True)
            continue
        start = time.time()
        if serves:
            ok, output = run_server(argv, root, env)
        else:
            result = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                                    timeout=900)
            ok, output = result.returncode == 0, result.stdout + result.stderr
        print(f"{'ok   ' if ok else 'FAIL '}  {time.time() - start:5.1f}s  {name}", flush=True)
        if not ok:
            failures += 1
            print("       " + "\n       ".join(output.strip().splitlines()[-15:]), flush=True)
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
