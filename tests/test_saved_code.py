"""The chapters' ``#@save`` cells and their copies in ``ser_utils`` are identical."""

import json
import shutil

from ser_utils.run_context import project_root
from ser_utils.course.literate import check_saved_code, saved_definitions, write_saved_code

ROOT = project_root()


def test_every_saved_cell_matches_its_package_copy():
    problems = check_saved_code(ROOT / "book", ROOT / "ser_utils")
    assert not problems, "chapter and package differ (python -m ser_utils saved-code --write):\n" + "\n".join(problems)


def _notebook(path, *cells):
    nb = {"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": None}
                    for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_an_edit_on_either_side_is_caught_and_write_repairs_it(tmp_path):
    book, pkg = tmp_path / "book", tmp_path / "pkg"
    book.mkdir()
    pkg.mkdir()
    code = "import numpy as np\n\n\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n    return 2 * x\n\nSCALE = 3"
    _notebook(book / "01_x.ipynb", "#@save maths\n" + code, "print(double(2))")
    (pkg / "maths.py").write_text("def double(x):\n    \"\"\"Twice x.\"\"\"\n    return 2 * x\n\nSCALE = 3\n")
    assert [d.name for d in saved_definitions(book / "01_x.ipynb")] == ["double", "SCALE"]
    assert check_saved_code(book, pkg) == []

    (pkg / "maths.py").write_text((pkg / "maths.py").read_text().replace("2 * x", "x + x"))
    assert check_saved_code(book, pkg) == ["01_x.ipynb cell 0: double: differs from its copy in maths.py"]
    assert write_saved_code(book, pkg) == ["maths:double"]
    assert check_saved_code(book, pkg) == []

    _notebook(book / "01_x.ipynb", "#@save maths\n" + code + "\n\n\ndef half(x):\n    return x / 2")
    assert check_saved_code(book, pkg) == ["01_x.ipynb cell 0: half: not defined in maths.py"]
    write_saved_code(book, pkg)
    assert "def half(x):" in (pkg / "maths.py").read_text()
    assert check_saved_code(book, pkg) == []
    shutil.rmtree(book)
