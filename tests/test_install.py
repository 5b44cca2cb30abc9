"""The installed package: outside a checkout `book` and `saved-code` say so in one line; what the wheel holds."""

import ser_utils.run_context as run_context
from ser_utils.course.commands import main  # the program (the console script): library and book commands


def test_book_outside_a_checkout_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_context, "project_root", lambda: tmp_path)
    assert main(["book", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no _toc.yml in") and "checkout" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no artifacts folder made on the way
    assert main(["book", "--from-published", str(tmp_path)]) == 2


def test_saved_code_fails_when_it_finds_no_chapters(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_context, "project_root", lambda: tmp_path)
    assert main(["saved-code"]) == 2
    assert "no chapters (book/*.ipynb)" in capsys.readouterr().err


def test_the_wheel_holds_the_library_its_licence_types_and_one_script(tmp_path):
    """The wheel built from the project: what a fresh install gets (the full install: CONTRIBUTING.md).

    Built from a copy of the package's sources (the checkout gets no ``build/`` folder) without
    build isolation, so no registry is needed: a few seconds.
    """
    import shutil
    import subprocess
    import sys
    import zipfile
    from email.parser import Parser

    from .conftest import ROOT

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ser_utils", src / "ser_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("ser_utils-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        scripts = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "ser_utils/py.typed" in names and "ser_utils/course/pages.py" in names
    assert any(n.startswith(f"{dist_info}/licenses/LICENSE") for n in names)
    assert {n.split("/")[0] for n in names} == {"ser_utils", dist_info}  # no tests/, book/ or results/
    assert meta["License-Expression"] == "MIT"
    assert sorted(meta["Requires-Python"].split(",")) == ["<3.14", ">=3.11"]
    assert "ser-utils = ser_utils.course.commands:main" in scripts
    core = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    tooling = ("pytest", "nbval", "jupyter-book", "papermill", "jupyterlab", "websocket-client", "dask")
    assert core and not [r for r in core if r.startswith(tooling)], core
    assert set(meta.get_all("Provides-Extra")) >= {"book", "lab", "test", "pretrained", "grid"}
