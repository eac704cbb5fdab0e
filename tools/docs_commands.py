"""The shell commands that README.md and docs/*.md show, so that tests can check them.

A command is a line that runs `python -m dcgan_keras.binaries.<name>` or
`python benchmarks/<script>.py` (with `.venv/bin/python`, `flock ...` or `VAR=...` before it),
with its backslash continuation lines. Optional parts written as `[--flag=a|b]` count as
`--flag=a` (the first alternative).
"""
import dataclasses
import glob
import os
import re
import shlex

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = re.compile(r"python -m dcgan_keras\.binaries\.(\w+)")
OPTIONAL_MODULES = ("torch",)  # benchmarks of the PyTorch peers import it first
BENCHMARK = re.compile(r"python (benchmarks/\w+\.py)")


@dataclasses.dataclass
class Command:
    """One documented command: where it is written, what it runs, and its arguments."""
    path: str            # the .md file, relative to the repository
    line: int            # its first line there (1-based)
    kind: str            # "binary" or "benchmark"
    target: str          # the binary's name (train, export, ...) or the script's path
    args: list           # the arguments after the binary or the script
    text: str            # the command as written (continuations joined)
    plain_args: list = None  # the arguments without the optional [...] parts


def doc_files():
    """README.md and every docs/*.md, relative to the repository root."""
    return ["README.md"] + sorted(os.path.relpath(p, REPO)
                                  for p in glob.glob(os.path.join(REPO, "docs", "*.md")))


def _logical_lines(text):
    """(first line number, line) with backslash continuations joined."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start, line = i, lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        yield start + 1, line
        i += 1


def _arguments(rest, optional=True):
    """The arguments of a command line after the program (comments removed), with the
    optional `[...]` parts (their first alternative) or without them."""
    rest = rest.split("`")[0]  # the end of inline code
    for end in (" # ", " | ", " && ", " ; ", " > "):  # a comment, a pipe, the next command
        rest = rest.split(end)[0]
    if not optional:
        rest = re.sub(r"\[[^\]]*\]", " ", rest)
    args = []
    for token in shlex.split(rest.replace("[", " ").replace("]", " ")):
        if token.startswith("--") and "=" in token and "|" in token.split("=", 1)[1]:
            name, value = token.split("=", 1)
            token = f"{name}={value.split('|')[0]}"
        if token != "...":  # "and more flags" in prose
            args.append(token)
    return args


def commands(files=None):
    """Every documented binary and benchmark command in `files` (default: `doc_files()`)."""
    found = []
    for path in files or doc_files():
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            text = f.read()
        for number, line in _logical_lines(text):
            for kind, pattern in (("binary", BINARY), ("benchmark", BENCHMARK)):
                match = pattern.search(line)
                if match:
                    rest = line[match.end():]
                    found.append(Command(path, number, kind, match.group(1),
                                         _arguments(rest), line.strip(),
                                         _arguments(rest, optional=False)))
    return found


def probe(target, request):
    """Runs `probe_binary(target, request)` in a fresh Python process and returns its
    result; target "binaries" probes each binary of a {name: [args, ...]} request,
    "benchmarks" runs `probe_benchmarks(request)`."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "probe", target],
                            input=json.dumps(request), capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    if "@@RESULT@@" not in result.stdout:
        raise RuntimeError(f"probing {target} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.split("@@RESULT@@")[-1])


def probe_binary(name, arg_lists):
    """Parses each argument list with binary `name`'s absl flags, in this process.

    Returns {"errors": [[args, message], ...], "help": its --help text, "flags": the flags
    it defines, "groups": its HELP_GROUPS}. The binary's flags are removed again afterwards
    (absl's flags are global, and binaries define flags of the same names), so one process
    can probe every binary in turn.
    """
    from absl import flags  # noqa: PLC0415
    from dcgan_keras.binaries import common  # noqa: PLC0415
    errors = []
    with common.binary_flags(name) as module:
        ours = sorted(common.binary_flag_names())
        for args in arg_lists:
            flags.FLAGS.unparse_flags()
            try:
                flags.FLAGS([name] + list(args))
            except flags.Error as e:
                errors.append([args, str(e)])
        help_text = common.grouped_help(module.__doc__, module.HELP_GROUPS)
    return {"errors": errors, "help": help_text, "flags": ours, "groups": module.HELP_GROUPS}


def probe_benchmarks(commands_):
    """Parses each benchmark command's arguments with its script's own argparse parser
    or absl flags, without running it (parsing is stopped right after it). Returns
    [[script, args, message], ...] for the commands that do not parse."""
    import argparse  # noqa: PLC0415
    import runpy  # noqa: PLC0415
    import sys  # noqa: PLC0415

    class Parsed(Exception):
        pass

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise Parsed

    def refuse(self, message):
        raise ValueError(message)

    def absl_parse_then_stop(main, argv=None, **_):
        from absl import flags  # noqa: PLC0415
        try:
            flags.FLAGS(argv or sys.argv)
        except flags.Error as e:
            raise ValueError(str(e)) from e
        raise Parsed

    argparse.ArgumentParser.parse_args = parse_then_stop
    argparse.ArgumentParser.error = refuse
    from absl import app  # noqa: PLC0415  (scripts on absl flags: parse, do not run)
    app.run = absl_parse_then_stop
    errors = []
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # as `python benchmarks/x.py` does
    from absl import flags  # noqa: PLC0415
    known = set(flags.FLAGS)
    for script, args in commands_:
        sys.argv = [script] + list(args)
        try:
            runpy.run_path(os.path.join(REPO, script), run_name="__main__")
            errors.append([script, args, "ran without parsing arguments with argparse"])
        except Parsed:
            pass
        except ModuleNotFoundError as e:  # a peer's framework (torch) that is not installed
            if e.name not in OPTIONAL_MODULES:
                raise
        except (ValueError, SystemExit) as e:
            errors.append([script, args, str(e)])
        finally:  # absl's flags are global: forget this script's (another may reuse names)
            for name in set(flags.FLAGS) - known:
                delattr(flags.FLAGS, name)
            flags.FLAGS.unparse_flags()
    return errors


if __name__ == "__main__":  # python tools/docs_commands.py probe NAME|binaries|benchmarks < JSON
    import json
    import sys
    request = json.load(sys.stdin)
    if sys.argv[2] == "benchmarks":
        result = probe_benchmarks(request)
    elif sys.argv[2] == "binaries":  # {name: [args, ...]} -> {name: probe_binary's result}
        result = {name: probe_binary(name, arg_lists) for name, arg_lists in request.items()}
    else:
        result = probe_binary(sys.argv[2], request)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result) + "\n")
