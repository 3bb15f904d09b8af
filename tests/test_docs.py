"""The docs cannot drift: every command, flag, file and link that README.md and docs/
name exists."""

import re
from pathlib import Path

import pytest

from launch import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCE_TREES = ("actors", "runtime", "launch", "tests", "docs", ".ci")
TOP_FILES = ("ray_cluster.yaml", "pyproject.toml", "Makefile", "README.md")


def _text(page: Path) -> str:
    return page.read_text()


def _code_spans(text: str) -> list[str]:
    """Inline `code` and the lines of fenced blocks."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    unfenced = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", unfenced) + [
        line for block in fenced for line in block.splitlines()
    ]


def _subcommands() -> dict[str, set[str]]:
    """serket-ray's subcommands and the option strings each takes."""
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return {
        name: {option for action in sub._actions for option in action.option_strings}
        for name, sub in commands.choices.items()
    }


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_serket_ray_command_and_flag_exists(page):
    subcommands = _subcommands()
    used = 0
    for span in _code_spans(_text(page)):
        for match in re.finditer(r"serket-ray ([a-z][\w-]*)([^|;]*)", span):
            name, rest = match.groups()
            assert name in subcommands, f"{page.name}: `serket-ray {name}` is no subcommand"
            for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest.split("  ")[0]):
                assert flag in subcommands[name], f"{page.name}: serket-ray {name} has no {flag}"
            used += 1
    if page.name == "README.md":
        assert used >= 8  # the check reads what it should


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_exists(page):
    targets = _make_targets()
    named = [
        target
        for span in _code_spans(_text(page))
        for target in re.findall(r"(?<![\w-])make (?:[A-Z_]+=\S+ )*([a-z][\w-]*)", span)
    ]
    for target in named:
        assert target in targets, f"{page.name}: `make {target}` is no Makefile target"
    if page.name == "README.md":
        assert {"demo", "test"} <= set(named)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_named_exists(page):
    text = _text(page)
    paths = {
        match.group(0).rstrip(".:,")
        for span in _code_spans(text)
        for match in re.finditer(
            rf"(?<![\w./~-])(?:{'|'.join(re.escape(t) for t in SOURCE_TREES)})/[\w./-]+", span
        )
    }
    paths |= {name for name in TOP_FILES if f"`{name}`" in text}
    for path in paths:
        file = path.split(":")[0]  # launch/recipes.py:run_rounds
        assert (ROOT / file).exists(), f"{page.name}: {file} does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_anchor_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", _text(page)):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)}
            assert anchor in slugs, f"{page.name}: link to {target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_selection_named_selects_a_test(page):
    """`pytest tests/test_x.py -k "a or b"`: the file exists and each name matches a test."""
    for file, expression in re.findall(
        r"pytest (tests/[\w/]+\.py)(?: -k \"?([\w ]+)\"?)?", _text(page)
    ):
        tests = re.findall(r"^def (test_\w+)", (ROOT / file).read_text(), flags=re.M)
        for word in set(expression.split()) - {"and", "or", "not"}:
            assert any(word in t for t in tests), (
                f"{page.name}: -k {word} selects nothing in {file}"
            )


def _slug(heading: str) -> str:
    """A heading's anchor, as GitHub makes it."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_readme_is_short():
    assert len(_text(ROOT / "README.md").splitlines()) <= 300
