"""The README's promises: its example runs and prints a schedule, CI runs exactly its test command, and the
tutorials run to the end (with --quick) and print their result."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def fenced_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_example_runs_and_prints_the_schedule(capsys):
    example = fenced_blocks("python")[0]
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "forward" in printed and "backward" in printed
    assert re.search(r"memory plan: .*planned peak", printed)


def test_readme_training_script_is_the_tested_example():
    """The README shows examples/readme_training.py verbatim (tests/test_train.py runs that file)."""
    assert (ROOT / "examples" / "readme_training.py").read_text() in fenced_blocks("python")


def test_readme_main_command_runs_a_tutorial_that_exists():
    (main,) = [line for block in fenced_blocks("bash") for line in block.splitlines() if "tutorials/" in line]
    script = re.search(r"(tutorials/\S+\.py)", main).group(1)
    assert (ROOT / script).is_file(), script
    assert "[tutorials]" in main                       # the lesson's data sets and figures need that extra


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line for block in fenced_blocks("bash") for line in block.splitlines() if "pytest" in line]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert commands == ci


def test_first_tutorial_trains_in_quick_mode(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tutorials" / "00_first_network.py"), "--quick",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    first, last = map(float, re.search(r"first batch loss ([\d.]+) -> last epoch mean loss ([\d.]+)",
                                       result.stdout).groups())
    assert last < first
    assert re.search(r"^RESULT test accuracy [\d.]+", result.stdout, flags=re.M)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["00_first_network_data.png",
                                                                 "00_first_network_loss.png"]   # --out, as the others


def test_tutorials_readme_lists_every_lesson_and_its_commands_name_scripts_that_exist():
    """tutorials/README.md: a table row per lesson, and every script its commands run is there."""
    text = (ROOT / "tutorials" / "README.md").read_text()
    for lesson in sorted((ROOT / "tutorials").glob("[0-9][0-9]*_*.py")):
        assert re.search(rf"^\| `{lesson.name}` \|", text, flags=re.M), f"{lesson.name} is not in the table"
    commands = [line for block in re.findall(r"```\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    scripts = {script for line in commands for script in re.findall(r"(tutorials/\S+\.py)", line)}
    assert "tutorials/build_notebooks.py" in scripts
    assert all((ROOT / script).is_file() for script in scripts), scripts
