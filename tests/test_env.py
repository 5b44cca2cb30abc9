"""Project files agree with each other: environment.yml installs what pyproject.toml declares."""

import tomllib

import yaml

from .conftest import ROOT


def test_environment_yml_matches_pyproject():
    """The conda environment installs the dependencies and every optional extra (grid, ...)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project.get("optional-dependencies", {}).values() for d in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(p for p in pip if p != "-e .") == sorted(deps)
    assert "python=3.11" in env["dependencies"] and "-e ." in pip


def test_torch_is_pinned_to_the_cpu_build_and_jupyter_book_below_2():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    assert any(d.startswith("jupyter-book") and "<2" in d for d in deps)


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make book") < readme.index("## Using real TESS")
    assert readme.index("make test") < readme.index("## Using real TESS")


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
