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
    (pkg / "maths.py").write_text("import numpy as np\n\n\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n    return 2 * x\n\n"
                                  "SCALE = 3\n")
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


def test_a_package_definition_whose_chapter_cell_is_gone_is_caught(tmp_path):
    book, pkg = tmp_path / "book", tmp_path / "pkg"
    book.mkdir()
    pkg.mkdir()
    _notebook(book / "01_x.ipynb", "#@save maths\ndef double(x):\n    return 2 * x")
    (pkg / "maths.py").write_text(
        "def double(x):\n    return 2 * x\n\n\n"
        "def half(x):\n    \"\"\"Half x.\n\n    Saved from chapter 1, section 1.1 (book/01_x.ipynb).\n    \"\"\"\n    return x / 2\n\n\n"
        "def plumbing(x):\n    return x\n")
    assert check_saved_code(book, pkg) == [
        "maths.py: half is marked as saved from a chapter, but no #@save cell defines it "
        "(delete it, or unmark it if it is plumbing)"]


def test_new_saved_code_lands_in_the_marked_region_before_the_main_block(tmp_path):
    from ser_utils.course.literate import REGION_END, REGION_START

    book, pkg = tmp_path / "book", tmp_path / "pkg"
    book.mkdir()
    pkg.mkdir()
    (pkg / "maths.py").write_text("import sys\n\n\ndef main():\n    return 0\n\n\nif __name__ == \"__main__\":\n"
                                  "    sys.exit(main())\n")
    _notebook(book / "01_x.ipynb", "#@save maths\ndef double(x):\n    return 2 * x")
    assert write_saved_code(book, pkg) == ["maths:double"]
    text = (pkg / "maths.py").read_text()
    assert text.index(REGION_START) < text.index("def double") < text.index(REGION_END) < text.index("if __name__")
    assert check_saved_code(book, pkg) == []
    # the region itself marks its definitions as saved: remove the cell and the orphan is reported
    _notebook(book / "01_x.ipynb", "print(1)")
    assert check_saved_code(book, pkg) == [
        "maths.py: double is marked as saved from a chapter, but no #@save cell defines it "
        "(delete it, or unmark it if it is plumbing)"]


def test_a_saved_cell_must_import_what_it_uses_and_the_module_must_bind_it(tmp_path):
    book, pkg = tmp_path / "book", tmp_path / "pkg"
    book.mkdir()
    pkg.mkdir()
    (pkg / "maths.py").write_text("import numpy as np\n\nSCALE = 3\n\n\ndef double(x):\n    return np.asarray(x) * 2\n"
                                  "\n\ndef triple(x):\n    return SCALE * x\n")
    _notebook(book / "01_x.ipynb", "import numpy as np",  # an unsaved cell: the saved one cannot rely on it
              "#@save maths\ndef double(x):\n    return np.asarray(x) * 2",
              "#@save maths\nSCALE = 3\n\n\ndef triple(x):\n    return SCALE * x",  # SCALE: saved, same module
              "#@save maths\nimport copy\n\n\ndef twice(x):\n    return copy.copy(x) * 2")
    problems = check_saved_code(book, pkg)
    assert "01_x.ipynb cell 1: uses np without importing it in the cell" in problems
    assert "01_x.ipynb cell 3: imports copy, which ser_utils.maths does not import" in problems
    assert not any("cell 2" in p for p in problems)
