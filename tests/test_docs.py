"""The commands in README.md and docs/ are real: every binary and benchmark they run exists,
and its arguments parse with that program's own flags; --help groups every flag.

`make docs-check` goes further and runs the README's commands on tiny settings.
"""
import collections
import os
import re
import subprocess
import sys

import pytest

from testutil import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import docs_commands  # noqa: E402

COMMANDS = docs_commands.commands()
BINARIES = sorted(os.path.splitext(f)[0] for f in os.listdir(
    os.path.join(REPO, "dcgan_keras", "binaries"))
    if f.endswith(".py") and f not in ("__init__.py", "common.py", "egan_flags.py"))
# The headings of the README's tasks, in its order; a binary's groups follow it.
README_GROUPS = ("data", "model", "optimisation", "run", "evaluation")


@pytest.fixture(scope="module")
def probes():
    by_binary = collections.defaultdict(list)
    for c in COMMANDS:
        if c.kind == "binary":
            by_binary[c.target].append(c.args)
    return {name: docs_commands.probe(name, by_binary[name]) for name in BINARIES}


def test_the_docs_show_commands_of_every_binary():
    shown = {c.target for c in COMMANDS if c.kind == "binary"}
    assert shown == set(BINARIES), f"binaries without a documented command: " \
                                   f"{set(BINARIES) - shown}; unknown: {shown - set(BINARIES)}"


def test_extraction_joins_continuations_and_reads_optional_parts(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n    python -m dcgan_keras.binaries.export --workdir=W \\\n"
                   "        [--checkpoint=latest|best|PATH]   # a comment\n"
                   "and `python -m dcgan_keras.binaries.sample --num=3 ...` inline.\n")
    found = docs_commands.commands([str(doc)])
    assert [(c.line, c.target, c.args) for c in found] == [
        (3, "export", ["--workdir=W", "--checkpoint=latest"]),
        (5, "sample", ["--num=3"])]


def test_every_documented_binary_command_parses(probes):
    errors = [f"{name}: {args}: {message}" for name, probe in probes.items()
              for args, message in probe["errors"]]
    assert not errors, "documented commands that do not parse:\n" + "\n".join(errors)


def test_documented_analyze_verbs_exist():
    from dcgan_keras.analysis import analyze_lib
    verbs = {c.args[0] for c in COMMANDS if c.target == "analyze"}
    assert verbs and verbs <= set(analyze_lib.VERBS), verbs - set(analyze_lib.VERBS)


def test_every_documented_benchmark_command_parses():
    scripts = {c.target for c in COMMANDS if c.kind == "benchmark"}
    assert all(os.path.exists(os.path.join(REPO, s)) for s in scripts), scripts
    errors = docs_commands.probe("benchmarks", [[c.target, c.args] for c in COMMANDS
                                   if c.kind == "benchmark"])
    assert not errors, errors


def _anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_anchor_slugs():
    assert _anchor("GAN Dissection on shapes (issue 13)") == "gan-dissection-on-shapes-issue-13"
    assert _anchor("DCGAN features vs a supervised CNN of D's architecture, 1,000 labels") == \
        "dcgan-features-vs-a-supervised-cnn-of-ds-architecture-1000-labels"


def test_files_and_anchors_the_docs_link_to_exist():
    missing = []
    for path in docs_commands.doc_files():
        text = open(os.path.join(REPO, path), encoding="utf-8").read()
        base = os.path.dirname(os.path.join(REPO, path))
        for link, anchor in re.findall(r"\]\(([\w./-]*)(?:#([^)]*))?\)", text):
            target = os.path.join(base, link) if link else os.path.join(REPO, path)
            if link.startswith(("http://", "https://")):
                continue
            if not os.path.exists(target):
                missing.append(f"{path}: {link}")
            elif anchor and target.endswith(".md"):
                headings = re.findall(r"^#+ (.*)$", open(target, encoding="utf-8").read(), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    missing.append(f"{path}: {link}#{anchor}")
    assert not missing, missing


@pytest.mark.parametrize("name", BINARIES)
def test_help_groups_every_flag(probes, name):
    probe = probes[name]
    grouped = [flag for flags in probe["groups"].values() for flag in flags]
    assert sorted(grouped) == probe["flags"], "flags in no group or in two: " + \
        str(sorted(set(grouped) ^ set(probe["flags"])))
    assert "\nother:" not in probe["help"]
    headings = re.findall(r"^(\S[^\n]*):\n  --", probe["help"], re.M)
    assert headings == list(probe["groups"])
    for flag in probe["flags"]:
        assert probe["help"].count(f"  --{flag}:") == 1, flag
    order = [g for g in probe["groups"] if g in README_GROUPS]
    assert order == sorted(order, key=README_GROUPS.index)


def test_train_help_has_the_readme_groups(probes):
    assert list(probes["train"]["groups"])[:5] == list(README_GROUPS)


def test_help_exits_zero_with_groups():
    result = subprocess.run([sys.executable, "-m", "dcgan_keras.binaries.sample", "--help"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0
    assert "\nnetworks:\n  --workdir:" in result.stdout and "\nsampling:\n" in result.stdout
