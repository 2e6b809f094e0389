"""The commands README.md and docs/*.md give a reader (``tests/doc_commands.py``): every shell block
is run by a test or says why it cannot be, every inline command still parses, and the ``cli``
group's blocks run here as written."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.tools.local.toolchain.build import bin_dir
from tests.doc_commands import REPO, RUNNERS, Inline, blocks, group, inline_commands

#: What a placeholder in an inline command stands for when it is parsed (a template such as
#: ``--stack S`` is checked as ``--stack staging``); ``None`` drops the token. A placeholder not
#: listed here fails the test: add it, with a value the command accepts.
PLACEHOLDERS: dict[str, str | None] = {
    "S": "staging",
    "DIR": "build/out",
    "URL": "http://127.0.0.1:9090",
    "staging|prod": "staging",
    "[--purge]": None,
    "[--only": None,
    "NAME…]": None,
    "[pytest": None,
    "args]": None,
    "…": None,
}
#: What ``<name>`` inside a word stands for (``origin/<base>`` is checked as ``origin/main``).
NAMED: dict[str, str] = {
    "stack": "staging",
    "base": "main",
    "host": "preview.example.com",
    "id": "r-20261206-01-a1b2",
    "digest": "sha256:" + "0" * 64,
}
#: The entry points of this project's own CLIs: a module run with ``python -m``.
OWN_MODULES = ("infra", "worker", "bench")


class _Parsed(Exception):
    """Raised by the patched parser once a command line parsed: nothing of the command runs."""


@contextlib.contextmanager
def parse_only() -> Iterator[None]:
    """Make every ``ArgumentParser.parse_args`` stop the command right after a successful parse."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> argparse.Namespace:
        original(self, *args, **kwargs)  # type: ignore[call-overload]
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]


def argv_of(command: str, strict: bool) -> list[str]:
    """The command's words with its placeholders replaced (see :data:`PLACEHOLDERS`). For another
    tool (``strict=False``) the words stop at the first unknown placeholder (``git push origin
    --delete release/<stack>/<id>`` is checked as ``git push``)."""
    words = []
    for word in shlex.split(command):
        word = re.sub(r"<(\w+)>", lambda m: NAMED.get(m[1], m[0]), word)
        if word in PLACEHOLDERS:
            value = PLACEHOLDERS[word]
            if value is not None:
                words.append(value)
        elif re.search(r"[<>…]", word):
            if not strict:
                break
            pytest.fail(f"placeholder {word!r} in `{command}`: add it to PLACEHOLDERS")
        else:
            words.append(word)
    return words


def check_own_cli(module: str, args: list[str], where: str) -> None:
    """Parse ``python -m module args`` with the module's own parsers, running nothing. A command
    named without options (``python -m infra release promote``) is a reference to it: it must
    exist, so ``--help`` is parsed after its words."""
    if not any(a.startswith("-") for a in args):
        args = [*args, "--help"]
    entry = importlib.import_module(f"{module}.__main__" if "." not in module else module)
    if module == "infra" and args and args[0] not in {"-h", "--help"}:
        assert args[0] in entry.COMMANDS, f"{where}: `python -m infra {args[0]}` is not a command"
    with parse_only(), open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            if entry.main(args) == 0 and args[-1] == "--help":
                return  # a dispatcher's own usage (python -m infra --help)
        except _Parsed:
            return
        except SystemExit as exit_:
            assert exit_.code in (0, None), f"{where}: `python -m {module} {shlex.join(args)}` does not parse"
            return  # --help
    pytest.fail(f"{where}: `python -m {module} {shlex.join(args)}` parsed nothing")


def check_dev(args: list[str], where: str) -> None:
    if not args:
        return  # the script itself
    commands = re.findall(r"^  (\w+)\) ", (REPO / "dev").read_text(), re.M)
    assert args[0] in commands, f"{where}: `./dev {shlex.join(args)}` is not one of {commands}"
    if args[1:2] == ["--python"]:
        supported = subprocess.run(
            [sys.executable, "-m", "infra.tools.local.pythons", "supported"], capture_output=True, text=True
        ).stdout.split()
        assert args[2] in supported, f"{where}: Python {args[2]} is not supported ({supported})"


def check_tool(words: list[str], where: str) -> None:
    """Another tool's subcommand exists: ``tool sub … --help`` (git: ``-h``, exit 129) prints that
    subcommand's usage. Only the usage line proves it: pulumi and kubectl answer an unknown
    subcommand's ``--help`` with their own top-level help and exit 0. curl has no subcommands."""
    tool = shutil.which(words[0], path=f"{bin_dir()}:{os.environ['PATH']}")
    assert tool, f"{where}: {words[0]} is not installed here"
    sub = [w for w in words[1:] if not w.startswith("-")][: 1 if words[0] in {"git", "npm", "uv"} else 3]
    if words[0] == "curl":
        sub = []
    flag = "-h" if words[0] == "git" else "--help"
    # The trailing words may be arguments, not subcommands: drop them one at a time, but the first
    # word after the tool (its subcommand) must be accepted.
    for n in range(len(sub), 0, -1) if sub else [0]:
        proc = subprocess.run([tool, *sub[:n], flag], capture_output=True, text=True, timeout=60)
        usage, answered = " ".join([words[0], *sub[:n]]), proc.stdout + proc.stderr
        if proc.returncode in ((0, 129) if words[0] == "git" else (0,)) and usage in answered:
            return
    pytest.fail(f"{where}: `{shlex.join(words)}`: {words[0]} does not know `{' '.join(sub[:1])}`")


def test_every_shell_block_is_run_by_a_test_or_says_why_not() -> None:
    found = blocks()
    assert len(found) >= 10
    unmarked = [b.where for b in found if b.group is None and b.reason is None]
    assert not unmarked, (
        f"shell blocks with neither <!-- doc-run: GROUP --> nor <!-- not-runnable: REASON -->: {unmarked}"
    )
    for block in found:
        if block.group is not None:
            assert block.group in RUNNERS, f"{block.where}: unknown group {block.group!r} ({sorted(RUNNERS)})"
        else:
            assert block.reason and len(block.reason) >= 20, f"{block.where}: say why it cannot run here"


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_each_group_has_a_runner_that_reads_its_blocks(name: str) -> None:
    runner = (REPO / RUNNERS[name]).read_text()
    assert f'group("{name}")' in runner, f"{RUNNERS[name]} does not run the {name!r} blocks"
    assert group(name)


def _inline_id(inline: Inline) -> str:
    return f"{inline.where}:{inline.text}"


@pytest.mark.parametrize("inline", inline_commands(), ids=_inline_id)
def test_every_inline_command_still_parses(inline: Inline) -> None:
    words = shlex.split(inline.text)
    module = words[2] if words[:2] in (["python", "-m"], [".venv/bin/python", "-m"]) else None
    if words[0] == "./dev":
        check_dev(argv_of(inline.text, strict=True)[1:], inline.where)
    elif module in OWN_MODULES:
        check_own_cli(module, argv_of(inline.text, strict=True)[3:], inline.where)
    elif module is not None:  # a module's own small CLI (python -m infra.manifests.scaling.adapter, …)
        assert importlib.util.find_spec(module), f"{inline.where}: no module {module}"
    else:
        check_tool(argv_of(inline.text, strict=False), inline.where)


def test_the_cli_blocks_run_as_written(tmp_path: Path) -> None:
    """``python -m worker validate`` on the payloads the block shows, printing what it shows."""
    (block,) = group("cli")
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    good = {
        "source": {"url": "https://images.example.com/a.jpg"},
        "outputs": [{"name": "t", "format": "webp", "width": 320, "height": 320}],
    }
    bad = {**good, "outputs": [{**good["outputs"][0], "format": "tiff"}]}  # type: ignore[dict-item]
    import json

    (payloads / "a.json").write_text(json.dumps(good))
    (payloads / "b.json").write_text(json.dumps(bad))
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    printed: list[str] = []
    for command in block.commands():
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        printed += proc.stdout.splitlines()
    assert printed == block.output()


def test_the_checks_catch_drift(tmp_path: Path) -> None:
    """A renamed flag, an unknown subcommand and an unmarked block are each caught."""
    with pytest.raises(AssertionError, match="does not parse"):
        check_own_cli("infra", ["release", "history", "--stak", "prod"], "here")
    with pytest.raises(AssertionError, match="is not a command"):
        check_own_cli("infra", ["relase"], "here")
    check_own_cli("infra", ["release", "history", "--stack", "prod"], "here")  # the right spelling parses
    with pytest.raises(pytest.fail.Exception, match="does not know `stak`"):
        check_tool(["pulumi", "stak", "select"], "here")
    check_tool(["pulumi", "stack", "select"], "here")
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n```sh\npulumi up\n```\n\n<!-- doc-run: cli -->\n```console\n$ echo hi\nhi\n```\n")
    first, second = blocks([doc])
    assert (first.group, first.reason) == (None, None)
    assert (second.group, second.commands(), second.output()) == ("cli", ["echo hi"], ["hi"])
