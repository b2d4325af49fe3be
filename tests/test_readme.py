"""The README's promises that CI and users rely on: its test command, its command list, no private paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from cbir.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_test_command() -> str:
    done = subprocess.run([str(ROOT / ".ci" / "readme-test-command"), str(ROOT / "README.md")],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_ci_runs_the_readme_test_command_and_no_other() -> None:
    command = _readme_test_command()
    assert command == "pip install -e '.[test]' && pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    code = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    # CI runs the README's line literally, once, and compares it with the README's own line first.
    assert [line for line in code if "pytest" in line and not line.startswith("ci_command=")] == [command]
    assert f'ci_command="{command}"' in code
    assert any("readme-test-command README.md" in line for line in code)
    assert code.index(command) > code.index('if [ "$readme_command" != "$ci_command" ]; then')


def test_the_command_reader_fails_when_the_line_is_gone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("# run the tests", "# tests"), encoding="utf-8")
    done = subprocess.run([str(ROOT / ".ci" / "readme-test-command"), str(readme)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1
    assert "run the tests" in done.stderr


def test_the_test_command_is_on_the_first_screen() -> None:
    first_screen = "\n".join(README.splitlines()[:25])
    assert _readme_test_command() in first_screen


def test_every_command_the_readme_lists_exists() -> None:
    block = README.split("## Commands", 1)[1].split("```", 2)[1]
    listed = {match.group(1) for match in re.finditer(r"^cbir ([a-z][a-z-]*)", block, flags=re.MULTILINE)}
    assert {"index", "search", "info", "evaluate", "serve"} <= listed
    for name in sorted(listed):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, f"README lists `cbir {name}`, which does not exist: {result.output}"


def test_no_path_that_exists_only_on_the_development_machine() -> None:
    for private in ("../shared", "/work/", "shared/datasets"):
        assert private not in README, private
