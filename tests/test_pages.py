"""The page pattern of ser_utils.course.pages: Colab cell, collapsed parameters, clean published pages."""

import sys

import nbformat
import pytest

from ser_utils.course import pages


def chapter(*extra_cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 1. Title"),
                nbformat.v4.new_code_cell('dataset = "auto"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("ch = start_chapter(dataset)"), *extra_cells]
    return nb


def test_pattern_puts_the_colab_cell_before_the_parameters_and_is_idempotent():
    nb = chapter()
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("Objectives (another helper's cell)"))
    assert pages.chapter_problems(nb, "https://example.org/r")
    assert pages.apply_chapter_pattern(nb, "https://example.org/r")
    kinds = [c.get("id") if c.get("id") == pages.COLAB_CELL_ID else c.metadata.get("tags") for c in nb.cells]
    assert kinds == [None, None, pages.COLAB_CELL_ID, ["parameters", "hide-cell"], ["hide-input"]]
    assert pages.chapter_problems(nb, "https://example.org/r") == []
    assert not pages.apply_chapter_pattern(nb, "https://example.org/r")
    # A changed repository URL is a problem until the cell is regenerated.
    assert "differs" in pages.chapter_problems(nb, "https://example.org/other")[0]


def test_colab_cell_does_nothing_outside_colab_and_says_what_to_set_on_colab(monkeypatch, tmp_path):
    source = pages.colab_cell("").source
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "colab", "exec"), {})  # not on Colab: no clone, no install, no chdir
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    with pytest.raises(SystemExit, match="repository: url"):
        exec(compile(source, "colab", "exec"), {})


def test_prepare_page_hides_papermill_cell_and_shortens_local_paths():
    injected = nbformat.v4.new_code_cell('data_dir = "/home/me/data/tess"', metadata={"tags": ["injected-parameters"]})
    out = nbformat.v4.new_code_cell("print(path)")
    out.outputs = [nbformat.v4.new_output("stream", name="stdout", text="saved model: /tmp/x/art/models/m.keras\n"),
                   nbformat.v4.new_output("display_data", data={"text/html": "<code>/home/me/data/tess</code>"})]
    nb = chapter(out)
    nb.cells.insert(2, injected)
    assert pages.prepare_page(nb) == 2
    assert nb.cells[2].metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert nb.cells[3].metadata["tags"] == ["hide-input"]  # the setup cell after papermill's
    assert out.outputs[0]["text"] == "saved model: …/models/m.keras\n"
    assert out.outputs[1]["data"]["text/html"] == "<code>…/data/tess</code>"


@pytest.mark.parametrize("text", ["see https://doi.org/10.5683/SP2/E8H2MF", "train/val/test", "(see /etc/hosts)",
                                  "epochs/s", "</td></tr>"])
def test_shorten_paths_leaves_urls_relative_paths_and_short_ones(text):
    assert pages.shorten_paths(text) == text


def test_pages_cli_reports_a_chapter_without_the_pattern(tmp_path, capsys):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(chapter(), str(path))
    assert pages.main([str(path)]) == 1
    assert "no Colab cell" in capsys.readouterr().out
    assert pages.main(["--write", str(path)]) == 0
    assert pages.main([str(path)]) == 0


def _texts(cell) -> list[str]:
    """A code cell's source and every text its outputs show."""
    out = [cell.source]
    for o in cell.get("outputs", []):
        out.append(o.get("text", ""))
        out += ["".join(v) if isinstance(v, list) else v for k, v in o.get("data", {}).items() if k.startswith("text/")]
    return out


def test_published_chapters_hold_no_local_path_and_no_injected_cell():
    """What a reader of the repository opens in published/: no path of the machine that ran it."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "published"
    notebooks = sorted(folder.glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not [c for c in code if "injected-parameters" in c.metadata.get("tags", [])], path.name
        # A path the chapter's own code spells (Colab's checkout, /content/ser-book) is the author's, not the machine's.
        source = (folder.parent / "book" / path.name).read_text(encoding="utf-8")
        found = [m for c in code for t in _texts(c) for m in pages._ABS_PATH.findall(t or "") if m not in source]
        assert not found, f"{path.name}: {found[:3]}"
        pm = nb.metadata.get("papermill", {})
        values = [pm.get("input_path"), pm.get("output_path"), *pm.get("parameters", {}).values()]
        assert not [v for v in values if isinstance(v, str) and v.startswith("/")], path.name


def test_tables_drop_the_row_numbers_of_a_default_index_only():
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    from ser_utils.course.chapter import _hide_default_index_in_html, frame_html

    numbered = pd.DataFrame({"model": ["cnn", "hybrid"], "uar": [0.5, 0.6]})
    assert "<th>0</th>" in numbered._repr_html_() and "<th>0</th>" not in frame_html(numbered)
    assert "<td>hybrid</td>" in frame_html(numbered) and 'class="dataframe"' in frame_html(numbered)
    by_model = numbered.set_index("model")
    assert frame_html(by_model) == by_model._repr_html_()  # an index that is data stays
    shifted = numbered.set_axis(pd.RangeIndex(1, 3))  # row 1, 2: a rank, kept
    assert "<th>1</th>" in frame_html(shifted)
    shell = InteractiveShell.instance()
    try:
        _hide_default_index_in_html()  # what page_theme does in a kernel
        html = shell.display_formatter.format(numbered)[0]["text/html"]
        assert "<th>0</th>" not in html and "model" in html
    finally:
        InteractiveShell.clear_instance()
