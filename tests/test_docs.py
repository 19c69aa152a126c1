"""The documentation checks: links resolve, pages stay short and in the users' words, and every command line they
show uses only options the command lines have.

The options are read from the Typer apps themselves (the click command objects behind `--help`), so a renamed
option fails here until the docs follow, and a new alias passes without any change here. The README's commands
that run in a second (`--help`, `dnas space`) are run as a user types them; the long ones (a server, an agent, a
search) are run by `bench/check_readme_commands.py`.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))
MAX_PAGE_LINES = 300
MAX_README_LINES = 150  # what the project is, the two commands, the demo's output, the by-hand path, links
LONG_PAGES_ALLOWED = {ROOT / "docs" / "protocol.md"}  # the protocol reference is complete, not short
CLI_APPS = {
    "dnas": "search_client.commands.cli",
    "device-agent": "device_agents.cli",
    "profiler-server": "profiler_server.cli",
}
# Words that belong to how the project was made, not to what it is; and files the repository does not hold.
FORBIDDEN = (
    (re.compile(r"\bsessions?\b", re.IGNORECASE), "the word 'session'"),
    (re.compile(r"\bengineers?\b", re.IGNORECASE), "the word 'engineer'"),
    (re.compile(r"\bissues? ?#?\d+", re.IGNORECASE), "an issue number"),
)
MD_MENTION = re.compile(r"(?<![\w/.-])([\w./-]*\w\.md)\b")
# README commands that finish in a second or two and need no server: run as shown.
FAST_COMMANDS = {("dnas", "--help"), ("dnas", "space"), ("dnas", "models"), ("device-agent", "--help"),
                 ("profiler-server", "--help")}

FENCE = re.compile(r"^\s*```")
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


# -- reading markdown --------------------------------------------------------------------------------------------


def split_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, fenced code lines), each as (line number, text). A block fenced as ```text is a figure or
    a diagram, not commands: it is neither prose nor code here."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fence: str | None = None  # the open block's info string
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fence = line.strip()[3:].strip() if fence is None else None
            continue
        if fence is None:
            prose.append((number, line))
        elif fence != "text":
            code.append((number, line))
    return prose, code


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link syntax reduced to its text, lower case, punctuation dropped, spaces
    to hyphens (https://github.com/github/cmark-gfm, as rendered on github.com)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if not match:
            continue
        slug = github_slug(match[1])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def dead_links(path: Path, text: str) -> list[str]:
    """Every relative link of `text` (a page at `path`) whose file or heading does not exist."""
    prose, _ = split_code(text)
    problems = []
    for number, line in prose:
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match["target"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}: {target}"
            if not linked.is_relative_to(ROOT):
                problems.append(f"{where}: outside the repository")
            elif not linked.exists():
                problems.append(f"{where}: no such file")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                problems.append(f"{where}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    return problems


# -- command lines in the docs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandLine:
    where: str
    words: tuple[str, ...]  # from the CLI's name (or the bench script's path) on, up to a shell operator


SHELL_OPERATORS = {"&", "&&", "|", "||", ";", ">", "2>", "<"}
BENCH_SCRIPT = re.compile(r"^(?:\./)?bench/\w+\.py$")


def shell_words(line: str) -> list[str]:
    line = re.sub(r"\$\(which (\S+)\)", r"\1", line)  # torchrun ... $(which dnas) search
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in an output line: words are enough
        return line.split()


def command_lines(path: Path, text: str) -> list[CommandLine]:
    """Every `dnas`, `device-agent` or `profiler-server` invocation in the page's code blocks and inline code."""
    prose, code = split_code(text)
    snippets: list[tuple[int, str]] = []
    pending = ""
    for number, line in code:  # join continuation lines
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        snippets.append((number, pending + line))
        pending = ""
    for number, line in prose:
        snippets.extend((number, span) for span in INLINE_CODE.findall(line)
                        if span.split()[0] in CLI_APPS or any(BENCH_SCRIPT.match(word) for word in span.split()))
    variables: dict[str, str] = {}  # ARGS="--width 0.5 ..." then `bench/x.py $ARGS`
    found = []
    for number, snippet in snippets:
        snippet = snippet.removeprefix("$ ").strip()
        if assignment := re.fullmatch(r'([A-Z_]+)="([^"]*)"', snippet):
            variables[assignment[1]] = assignment[2]
            continue
        snippet = re.sub(r"\$([A-Z_]+)\b", lambda m: variables.get(m[1], m[0]), snippet)
        words = shell_words(snippet)
        for start, word in enumerate(words):
            is_cli = Path(word).name in CLI_APPS and not (start and words[start - 1] in {"which", "command"})
            if not (is_cli or BENCH_SCRIPT.match(word)):
                continue
            end = start + 1
            while end < len(words) and words[end] not in SHELL_OPERATORS:
                end += 1
            name = Path(word).name if is_cli else word.removeprefix("./")
            found.append(CommandLine(f"{path.relative_to(ROOT)}:{number}", (name, *words[start + 1:end])))
    return found


@cache
def cli_command(name: str) -> Any:
    return typer.main.get_command(importlib.import_module(CLI_APPS[name]).app)


def option_names(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts, param.secondary_opts)
    return names


@cache
def bench_options(script: str) -> frozenset[str]:
    """The options a bench script's argparse parser declares, read from its source (and from the bench modules it
    imports): running `--help` would import torch for each script."""
    names = {"--help", "-h"}
    path = ROOT / script
    sources = [path]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (ROOT / "bench" / f"{node.module}.py").exists():
            sources.append(ROOT / "bench" / f"{node.module}.py")
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
                continue
            flags = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")]
            names.update(flags)
            if any(ast.unparse(keyword.value).endswith("BooleanOptionalAction") for keyword in node.keywords):
                names.update(f"--no-{flag[2:]}" for flag in flags if flag.startswith("--"))
    return frozenset(names)


def unknown_options(line: CommandLine) -> list[str]:
    """What in this command line its CLI does not have: a subcommand or an option (checked against the CLI objects)."""
    if BENCH_SCRIPT.match(line.words[0]):
        if not (ROOT / line.words[0]).exists():
            return [f"{line.where}: no such script {line.words[0]}"]
        known = bench_options(line.words[0])
        return [f"{line.where}: `{line.words[0]}` has no option {word.split('=', 1)[0]}" for word in line.words[1:]
                if word.startswith("--") and word.split("=", 1)[0] not in known]
    command = cli_command(line.words[0])
    path = [line.words[0]]
    problems = []
    for word in line.words[1:]:
        if word == "...":
            break
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+", word):
            name = word.split("=", 1)[0]
            if name not in option_names(command):
                problems.append(f"{line.where}: `{' '.join(path)}` has no option {name}")
        elif hasattr(command, "commands"):  # a group: the word names a subcommand
            if word not in command.commands:
                problems.append(f"{line.where}: `{' '.join(path)}` has no command {word!r}")
                break
            command = command.commands[word]
            path.append(word)
    return problems


# -- the checks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(path: Path) -> None:
    assert dead_links(path, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_are_short_and_in_the_users_words(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    limit = MAX_README_LINES if path == ROOT / "README.md" else MAX_PAGE_LINES
    if path not in LONG_PAGES_ALLOWED:
        assert len(text.splitlines()) <= limit, f"{path.relative_to(ROOT)}: split it, or move figures to results"
    found = [f"{path.relative_to(ROOT)}:{n}: {what}" for n, line in enumerate(text.splitlines(), start=1)
             for pattern, what in FORBIDDEN if pattern.search(line)]
    assert found == []
    assert files_outside_the_repository(path, text) == []


@cache
def repository_md_names() -> frozenset[str]:
    return frozenset(p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts and ".git" not in p.parts)


def files_outside_the_repository(path: Path, text: str) -> list[str]:
    """Markdown files the page names that the repository lacks."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        problems += [f"{path.relative_to(ROOT)}:{number}: {name}: no such file in the repository"
                     for name in MD_MENTION.findall(line) if Path(name).name not in repository_md_names()]
    return problems


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_uses_options_the_cli_has(path: Path) -> None:
    lines = command_lines(path, path.read_text(encoding="utf-8"))
    assert [problem for line in lines for problem in unknown_options(line)] == []


def test_the_checks_catch_a_dead_link_and_an_unknown_option() -> None:
    page = ROOT / "docs" / "example.md"
    text = ("See [a](missing.md), [b](search.md#no-such-heading), [c](search.md#what-the-search-does), "
            "[d](../../README.md).\n"
            "```\n$ dnas search --device my-cpu --no-such-option 3 \\\n    --out runs\ndnas lute pull\n"
            'ARGS="--n 30 --seeds 2"\n.venv/bin/python bench/bench_fidelity.py $ARGS --rounds 3\n```\n'
            "Or `device-agent run --server URL --sever URL`.\n")
    assert [problem.split(": ", 1)[1] for problem in files_outside_the_repository(page, "as GUIDE.md says")] == [
        "GUIDE.md: no such file in the repository"]
    assert [problem.split(": ", 1)[1] for problem in dead_links(page, text)] == [
        "missing.md: no such file", "search.md#no-such-heading: no heading #no-such-heading in docs/search.md",
        "../../README.md: outside the repository"]
    problems = [p.split(": ", 1)[1] for line in command_lines(page, text) for p in unknown_options(line)]
    assert problems == ["`dnas search` has no option --no-such-option", "`dnas` has no command 'lute'",
                        "`bench/bench_fidelity.py` has no option --seeds", "`device-agent run` has no option --sever"]


def test_github_slugs_match_how_headings_with_code_and_links_render() -> None:
    assert github_slug("Android over adb (e.g. a Samsung S8)") == "android-over-adb-eg-a-samsung-s8"
    assert github_slug("The space options and `--space`") == "the-space-options-and---space"
    assert github_slug("Retention: `profiler-server gc`") == "retention-profiler-server-gc"


def test_the_readmes_quick_commands_run_as_shown() -> None:
    readme = ROOT / "README.md"
    quick = [line for line in command_lines(readme, readme.read_text(encoding="utf-8"))
             if line.where.startswith("README.md") and tuple(line.words[:2]) in FAST_COMMANDS]
    assert len(quick) >= 4, "README shows `dnas --help`, `dnas space ...` and the other CLIs' --help"
    bin_dir = Path(sys.executable).parent
    for line in quick:
        completed = subprocess.run([str(bin_dir / line.words[0]), *line.words[1:]], capture_output=True, text=True,
                                   timeout=120, cwd=ROOT)
        assert completed.returncode == 0, f"{line.where}: {' '.join(line.words)}\n{completed.stderr}"
        assert completed.stdout.strip(), f"{line.where}: {' '.join(line.words)} printed nothing"
