"""The book runner (ser_utils.course.runner) on tiny throwaway books: toc, parameters, resume, failures, build.

Each test writes a small book into its tmp dir (a ``_toc.yml`` and notebooks of
two or three one-line cells), so the runner is exercised end to end, with
real papermill kernels, without running the real chapters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from myst_nb.core.utils import coalesce_streams

from ser_utils.course import runner
from ser_utils.__main__ import main
from ser_utils.course.runner import (
    BookBuildFailed,
    BookRun,
    BookSetupError,
    ChapterFailed,
    ChapterSelectionError,
    read_toc,
    run_book,
    select_chapters,
)
from ser_utils.errors import UserError

STANDARD = 'dataset = "auto"\ndata_dir = None\nartifacts_dir = None\nprotocol = "random"\nseed = 0\nepochs = None\nquick = None'
CONFIG = """title: tiny
author: tests
only_build_toc_files: true
execute:
  execute_notebooks: "off"
bibtex_bibfiles:
  - book/references.bib
html:
  use_repository_button: false
"""
BIB = "@misc{tiny2024,\n  author = {Doe, Jane},\n  title = {A tiny reference},\n  year = {2024}\n}\n"


def write_notebook(path: Path, params: str, *cells: str, title: str | None = None) -> Path:
    """A notebook with a title, a ``parameters`` cell holding ``params``, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title or path.stem}\n\nSome prose."), p]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def write_book(root: Path, chapters: dict[str, tuple[str, ...]], intro: str | None = "# Intro\n\nHello.\n") -> Path:
    """A book at ``root``: ``_config.yml``, ``_toc.yml`` listing ``chapters`` (name -> (params, *cells))."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "_config.yml").write_text(CONFIG)
    (root / "book" / "references.bib").write_text(BIB)
    if intro is not None:
        (root / "book" / "intro.md").write_text(intro)
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(f"  - file: book/{n}\n" for n in chapters)
    (root / "_toc.yml").write_text(toc)
    for name, (params, *cells) in chapters.items():
        write_notebook(root / "book" / f"{name}.ipynb", params, *cells)
    return root


def outputs_text(path: Path) -> str:
    """All stdout text of an executed notebook."""
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")


def params(**overrides) -> dict:
    base = {"dataset": "demo", "data_dir": None, "artifacts_dir": None, "quick": True, "epochs": None,
            "protocols": None, "seeds": None}
    base.update(overrides)
    return base


def statuses(report) -> dict[str, str]:
    return {c.chapter: c.status for c in report.chapters}


# --- toc and selection ---------------------------------------------------------------


def test_read_toc_follows_parts_and_sections(tmp_path):
    for name in ("01_a", "02_b", "03_c"):
        write_notebook(tmp_path / "book" / f"{name}.ipynb", "x = 1")
    (tmp_path / "book" / "notes.md").write_text("# Notes\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: One\n    chapters:\n      - file: book/02_b\n        sections:\n          - file: book/notes\n"
        "  - caption: Two\n    chapters:\n      - file: book/01_a\n      - file: book/03_c.ipynb\n"
    )
    root, entries = read_toc(tmp_path)
    assert root.docname == "book/intro" and root.path == tmp_path / "book" / "intro.md"
    assert [e.stem for e in entries] == ["02_b", "notes", "01_a", "03_c"]
    assert [e.is_notebook for e in entries] == [True, False, True, True]


def test_read_toc_names_a_missing_chapter(tmp_path):
    write_book(tmp_path, {"01_a": ("x = 1",)})
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/09_gone\n")
    with pytest.raises(BookSetupError, match="09_gone"):
        read_toc(tmp_path)


def test_select_chapters_by_number_or_name(tmp_path):
    write_book(tmp_path, {"01_a": ("x = 1",), "02_b": ("x = 1",), "03_c": ("x = 1",)})
    _, entries = read_toc(tmp_path)
    assert [e.stem for e in select_chapters(entries, None)] == ["01_a", "02_b", "03_c"]
    assert [e.stem for e in select_chapters(entries, "3,01")] == ["01_a", "03_c"]
    assert [e.stem for e in select_chapters(entries, ["02_b"])] == ["02_b"]
    with pytest.raises(ChapterSelectionError, match="07"):
        select_chapters(entries, "02,07")


# --- executing ----------------------------------------------------------------------


def test_parameters_reach_only_the_chapters_declaring_them(tmp_path, capfd):
    show = "print(f'dataset={dataset} quick={quick} epochs={epochs}')"
    write_book(tmp_path, {
        "01_std": (STANDARD, show, "print('protocols' in dir())"),
        "02_extra": (STANDARD + '\nprotocols = ["random"]\nseeds = [0]', show,
                     "print(f'protocols={protocols} seeds={seeds}')",
                     # tqdm in a kernel without ipywidgets: must leave no stderr noise in the page
                     "from tqdm.auto import tqdm\nprint(sum(tqdm(range(3))))",
                     # explicit bars: stderr, which the book leaves out
                     "import time\nfor i in tqdm(range(3), disable=False, leave=False, mininterval=0):\n"
                     "    time.sleep(0.01)",
                     "for i in tqdm(range(3), disable=False, desc='kept', mininterval=0):\n    time.sleep(0.01)"),
    })
    run = BookRun(params(epochs=3, protocols=["speaker", "word"], seeds=[1, 2]))
    report = run_book(tmp_path, run=run, html=False, progress=False, echo=lambda s: None)
    assert statuses(report) == {"01_std": "executed", "02_extra": "executed"}
    out1 = outputs_text(tmp_path / "_build/src/book/01_std.ipynb")
    out2 = outputs_text(tmp_path / "_build/src/book/02_extra.ipynb")
    assert "dataset=demo quick=True epochs=3" in out1
    assert "False" in out1  # protocols was not injected into a chapter that does not declare it
    assert "dataset=demo quick=True epochs=3" in out2
    assert "protocols=['speaker', 'word'] seeds=[1, 2]" in out2
    # Progress bars go to stderr only (which myst-nb keeps out of the pages, nb_output_stderr), and the
    # default bar (tqdm off in the kernels) writes nothing at all; stdout is merged by nb_merge_streams.
    nb2 = nbformat.read(str(tmp_path / "_build/src/book/02_extra.ipynb"), as_version=4)
    shown = [coalesce_streams(c.get("outputs", [])) for c in nb2.cells]
    stdout = [o.text for outs in shown for o in outs if o.get("name") == "stdout"]
    assert "3\n" in stdout and not any("%|" in t or "\r" in t for t in stdout), stdout
    with_stderr = [c.source for c, outs in zip(nb2.cells, shown) if any(o.get("name") == "stderr" for o in outs)]
    assert len(with_stderr) == 2 and all("disable=False" in s for s in with_stderr), with_stderr
    # The kernel talks over a local socket: no TCP-without-encryption warning.
    assert "without encryption" not in capfd.readouterr().err
    assert not list((tmp_path / "book").glob("kernel-*"))  # no kernel socket files in the chapter folder
    timings = json.loads((tmp_path / "_build/book-timings.json").read_text())
    assert [c["chapter"] for c in timings["chapters"]] == ["01_std", "02_extra"]
    assert all(c["wall_s"] > 0 for c in timings["chapters"])


def test_resume_skips_up_to_date_chapters_and_reruns_changed_ones(tmp_path):
    write_book(tmp_path, {"01_a": (STANDARD, "print(quick)"), "02_b": (STANDARD, "print(quick)")})
    quiet = {"html": False, "progress": False, "echo": lambda s: None}
    first = run_book(tmp_path, run=BookRun(params()), **quiet)
    assert set(statuses(first).values()) == {"executed"}
    copy = tmp_path / "_build/src/book/01_a.ipynb"
    mtime = copy.stat().st_mtime_ns

    again = run_book(tmp_path, run=BookRun(params()), **quiet)
    assert statuses(again) == {"01_a": "cached", "02_b": "cached"}
    assert copy.stat().st_mtime_ns == mtime

    # A changed source notebook, changed parameters or --force re-execute.
    write_notebook(tmp_path / "book" / "02_b.ipynb", STANDARD, "print('edited', quick)")
    assert statuses(run_book(tmp_path, run=BookRun(params()), **quiet)) == {"01_a": "cached", "02_b": "executed"}
    assert "edited True" in outputs_text(tmp_path / "_build/src/book/02_b.ipynb")
    changed = run_book(tmp_path, run=BookRun(params(quick=False), only="01"), **quiet)
    assert statuses(changed) == {"01_a": "executed", "02_b": "kept"}
    assert "False" in outputs_text(copy)
    forced = run_book(tmp_path, run=BookRun(params(quick=False), only="1", force=True), **quiet)
    assert statuses(forced)["01_a"] == "executed"


def test_a_change_to_the_code_a_chapter_imports_makes_its_stamp_stale(tmp_path, monkeypatch):
    from ser_utils.course import stamps

    write_book(tmp_path, {"01_a": (STANDARD, "print(quick)")})
    quiet = {"html": False, "progress": False, "echo": lambda s: None}
    assert statuses(run_book(tmp_path, run=BookRun(params()), **quiet)) == {"01_a": "executed"}
    assert statuses(run_book(tmp_path, run=BookRun(params()), **quiet)) == {"01_a": "cached"}
    monkeypatch.setattr(stamps, "code_hash", lambda *_: "edited ser_utils")
    assert statuses(run_book(tmp_path, run=BookRun(params()), **quiet)) == {"01_a": "executed"}


def test_failing_chapter_stops_the_run_naming_chapter_and_cell(tmp_path):
    write_book(tmp_path, {
        "01_ok": (STANDARD, "print('one')"),
        "02_bad": (STANDARD, "x = 1", "y = x / 0", "print('never')"),
        "03_after": (STANDARD, "print('three')"),
    })
    quiet = {"html": False, "progress": False, "echo": lambda s: None}
    with pytest.raises(ChapterFailed) as info:
        run_book(tmp_path, run=BookRun(params()), **quiet)
    err = info.value
    assert err.chapter == "02_bad"
    # Cells of 02_bad: 1 title, 2 parameters, 3 "x = 1", 4 "y = x / 0" (the injected cell not counted).
    assert err.cell == 4
    assert "02_bad" in str(err) and "cell 4" in str(err) and "ZeroDivisionError" in str(err)
    assert "y = x / 0" in str(err)
    assert not (tmp_path / "_build/src/book/03_after.ipynb").exists()
    report = json.loads((tmp_path / "_build/book-timings.json").read_text())
    assert report["failed"] == "02_bad"
    assert [c["status"] for c in report["chapters"]] == ["executed", "failed"]

    # The fix: the next run resumes at the failed chapter, reusing the first one.
    write_notebook(tmp_path / "book" / "02_bad.ipynb", STANDARD, "print('fixed')")
    resumed = run_book(tmp_path, run=BookRun(params()), **quiet)
    assert statuses(resumed) == {"01_ok": "cached", "02_bad": "executed", "03_after": "executed"}


def test_cli_reports_a_failing_chapter_without_traceback(tmp_path, capsys):
    write_book(tmp_path, {"01_bad": (STANDARD, "raise RuntimeError('broken on purpose')")})
    out = tmp_path / "out"
    code = main(["book", "--book-root", str(tmp_path), "--path-output", str(out), "--dataset", "demo",
                 "--quick", "--no-html", "--artifacts", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert code == 1
    assert "chapter 01_bad failed at cell 3" in err and "RuntimeError: broken on purpose" in err
    assert "Traceback" not in err
    assert main(["book", "--book-root", str(tmp_path), "--path-output", str(out), "--only", "5"]) == 2
    assert "no such chapter" in capsys.readouterr().err


def test_two_runs_never_share_a_build_folder(tmp_path):
    write_book(tmp_path, {"01_a": (STANDARD, "print('a')")})
    with runner.build_lock(tmp_path / "_build"):
        with pytest.raises(runner.BuildFolderBusy, match=str(os.getpid())):
            run_book(tmp_path, run=BookRun(params()), html=False, progress=False, echo=lambda s: None)
    assert not (tmp_path / "_build/src/book/01_a.ipynb").exists()


def test_only_stages_unselected_chapters_unexecuted(tmp_path):
    write_book(tmp_path, {"01_a": (STANDARD, "print('a')"), "02_b": (STANDARD, "print('b')")})
    report = run_book(tmp_path, run=BookRun(params(), only="02"), html=False, progress=False, echo=lambda s: None)
    assert statuses(report) == {"01_a": "not-run", "02_b": "executed"}
    staged = nbformat.read(str(tmp_path / "_build/src/book/01_a.ipynb"), as_version=4)
    assert "not executed in this build" in staged.cells[1].source
    assert all(not c.get("outputs") for c in staged.cells if c.cell_type == "code")


# --- building ------------------------------------------------------------------------


def test_build_html_with_citation_image_and_placeholder_root(tmp_path):
    book = write_book(tmp_path / "src", {"01_plot": (
        STANDARD,
        "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n%matplotlib inline",
        "plt.plot([1, 2]); plt.title('a line');",
    ), "02_unrun": (STANDARD, "print(2)")}, intro=None)
    # A chapter left out by --only is staged unexecuted: a warning inside it (here a reference to a
    # label that, say, only its outputs would define) is reported, but does not fail the partial build.
    unrun = nbformat.read(str(book / "book/02_unrun.ipynb"), as_version=4)
    unrun.cells[0].source += "\n\nSee {ref}`made-by-an-output`."
    nbformat.write(unrun, str(book / "book/02_unrun.ipynb"))
    nb = nbformat.read(str(book / "book/01_plot.ipynb"), as_version=4)
    nb.cells[0].source += "\n\nAs shown by {cite}`tiny2024`.\n\n```{bibliography}\n```\n\n![A pixel](pixel.png)"
    nbformat.write(nb, str(book / "book/01_plot.ipynb"))
    (book / "book/pixel.png").write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5b1e1a20000000049454e44ae426082"))
    messages = []
    report = run_book(book, tmp_path / "out", run=BookRun(params(), only="01"), progress=False, echo=messages.append)
    html = tmp_path / "out/_build/html"
    assert report.html == str(html / "index.html") and (html / "index.html").exists()
    assert statuses(report) == {"01_plot": "executed", "02_unrun": "not-run"}
    assert any("made-by-an-output" in m and m.strip().startswith("book/02_unrun") for m in messages)
    assert (html / "book/02_unrun.html").exists()
    page = (html / "book/01_plot.html").read_text()
    assert "Doe" in page and "pixel.png" in page and "<img" in page
    assert not (book / "book/intro.md").exists()  # the placeholder went to the staging copy only
    assert any("placeholder" in m for m in messages)
    assert report.build_s is not None and report.build_s > 0


def test_stderr_stays_out_of_the_pages_and_is_reported_as_a_note(tmp_path):
    book = write_book(tmp_path, {"01_noisy": (STANDARD, "import sys\nprint('to the', 'page')\n"
                                              "print('a library', 'notice', file=sys.stderr)")})
    config = (book / "_config.yml").read_text()
    (book / "_config.yml").write_text(config + "sphinx:\n  config:\n    nb_merge_streams: true\n"
                                      "    nb_output_stderr: remove-warn\n")
    messages = []
    report = run_book(book, run=BookRun(params()), progress=False, echo=messages.append)
    page = (tmp_path / "_build/html/book/01_noisy.html").read_text()
    assert "to the page" in page and "a library notice" not in page
    assert any("01_noisy" in m and "mystnb.stderr" in m for m in messages), messages
    assert report.failed is None


def test_build_fails_on_any_warning(tmp_path):
    book = write_book(tmp_path, {"01_a": (STANDARD, "print(1)")},
                      intro="# Intro\n\nSee {ref}`no-such-label` and {cite}`nobody1999`.\n")
    with pytest.raises(BookBuildFailed) as info:
        run_book(book, run=BookRun(params()), progress=False, echo=lambda s: None)
    text = str(info.value)
    assert "no-such-label" in text and "nobody1999" in text
    assert any(w.startswith("book/intro.md") for w in info.value.warnings)
    assert json.loads((tmp_path / "_build/book-timings.json").read_text())["failed"] == "jupyter-book build"


def test_the_book_config_hands_stream_tidying_to_myst_nb():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "_config.yml").read_text())["sphinx"]["config"]
    assert config["nb_merge_streams"] is True and config["nb_output_stderr"] == "remove-warn"


def test_sphinx_warnings_parses_the_log(tmp_path):
    log = (f"reading sources...\n\x1b[91m{tmp_path}/book/a.md:3: WARNING: undefined label: 'x'\x1b[39;49;00m\n"
           "build succeeded, 1 warning.\nWARNING: unknown config value\n")
    assert runner.sphinx_warnings(log, tmp_path) == [
        "book/a.md:3: WARNING: undefined label: 'x'", "WARNING: unknown config value"]


# --- the default run's scope, per-model timings, the published run -----------------------------


def test_full_reaches_only_chapters_declaring_it_and_per_model_times_are_reported(tmp_path):
    results = tmp_path / "results"
    write_rec = ("import json, pathlib\np = pathlib.Path(r'%s')\np.mkdir(exist_ok=True)\n"
                 "(p / 'cnn__random__seed0.json').write_text(json.dumps({'wall_time_s': 12.5}))" % results)
    write_book(tmp_path, {"01_a": (STANDARD, "print('full' in dir())"),
                          "02_b": (STANDARD + "\nfull = False", "print(f'full={full}')", write_rec)})
    report = run_book(tmp_path, run=BookRun(params(full=True, results_dir=str(results))), html=False,
                      progress=False, echo=lambda s: None)
    assert "False" in outputs_text(tmp_path / "_build/src/book/01_a.ipynb")
    assert "full=True" in outputs_text(tmp_path / "_build/src/book/02_b.ipynb")
    by_chapter = {c.chapter: c.models for c in report.chapters}
    assert by_chapter == {"01_a": {}, "02_b": {"cnn__random__seed0": 12.5}}
    assert "cnn__random__seed0" in runner.format_report(report)


def test_publish_refuses_demo_data_and_quick_runs(tmp_path):
    write_book(tmp_path, {"01_a": (STANDARD, "print(1)")})
    with pytest.raises(BookSetupError, match="real TESS"):
        run_book(tmp_path, run=BookRun(params(), publish=tmp_path / "published"), echo=lambda s: None)
    assert not (tmp_path / "published").exists()


def test_publish_refuses_a_checkout_with_local_changes(tmp_path, monkeypatch):
    import ser_utils.evaluation as evaluation

    write_book(tmp_path, {"01_a": (STANDARD, "print(1)")})
    monkeypatch.setattr(evaluation, "git_commit", lambda: "0123abc-dirty")
    run = BookRun(params(dataset="tess", data_dir=str(tmp_path), quick=False), publish=tmp_path / "published")
    with pytest.raises(BookSetupError, match="clean checkout"):
        run_book(tmp_path, run=run, echo=lambda s: None)
    monkeypatch.setattr(evaluation, "git_commit", lambda: None)
    with pytest.raises(BookSetupError, match="git checkout"):
        run_book(tmp_path, run=run, echo=lambda s: None)
    assert not (tmp_path / "published").exists()


def test_published_copy_has_no_injected_cell_and_no_local_path():
    from ser_utils.course.publish import published_copy

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("data_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('data_dir = "/home/me/data/TESS"', metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(ch)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="Data: /home/me/data/TESS (2800 clips)\n")])])
    nb.metadata["papermill"] = {"input_path": "/home/me/ser-book/book/01_data.ipynb",
                                "output_path": "/home/me/ser-book/_build/src/book/01_data.ipynb",
                                "parameters": {"data_dir": "/home/me/data/TESS", "quick": False, "seed": 0}}
    published_copy(nb)
    assert [c.source for c in nb.cells] == ["data_dir = None", "print(ch)"]
    assert nb.cells[1].outputs[0]["text"] == "Data: …/data/TESS (2800 clips)\n"
    assert "/home/me" not in json.dumps(nb.metadata)
    assert nb.metadata["papermill"]["parameters"] == {"data_dir": "TESS", "quick": False, "seed": 0}


def test_published_chapters_lose_audio_and_build_without_execution(tmp_path):
    audio = ("from IPython.display import Audio, display\nimport numpy as np\n"
             "display(Audio(np.zeros(800), rate=8000))\nprint('after the clip')")
    write_book(tmp_path, {"01_a": (STANDARD, audio)})
    report = run_book(tmp_path, run=BookRun(params()), html=False, progress=False, echo=lambda s: None)
    root, entries = read_toc(tmp_path)
    folder = runner.publish_chapters(entries, tmp_path / "_build", tmp_path / "published", report,
                                       data_dir="/data/TESS")
    published = nbformat.read(str(folder / "01_a.ipynb"), as_version=4)
    text = json.dumps(published.cells[-1].outputs)
    assert "<audio" not in text and "not redistributed" in text and "after the clip" in text
    run = json.loads((folder / "run.json").read_text())
    assert run["data_dir_name"] == "TESS" and run["chapters"][0]["chapter"] == "01_a"
    assert str(tmp_path) not in json.dumps(run) and str(tmp_path) not in json.dumps(published.metadata)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left behind
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(UserError, match="a file is in the way"):
        runner.publish_chapters(entries, tmp_path / "_build", blocked, report)
    # Building from the published folder executes nothing: a chapter source that would fail is never run.
    write_notebook(tmp_path / "book" / "01_a.ipynb", STANDARD, "raise RuntimeError('must not run')")
    staged = run_book(tmp_path, run=BookRun(params(), from_published=folder), html=False, echo=lambda s: None)
    assert statuses(staged) == {"01_a": "published"}
    assert "after the clip" in outputs_text(tmp_path / "_build/src/book/01_a.ipynb")


def test_progress_bars_obey_the_kernels_tqdm_disable(monkeypatch, capsys):
    """A bar asked for explicitly (disable=False) still hides in a chapter kernel, so no page gets a stderr box."""
    from ser_utils.evaluation import run_folds
    from ser_utils.quiet import bar_hidden

    env = runner.kernel_environment({})
    assert env["TQDM_DISABLE"] == "1"
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not bar_hidden(True) and bar_hidden(False)
    run_folds(["a", "b"], lambda s: s, progress=True)
    assert "Folds" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", env["TQDM_DISABLE"])
    assert bar_hidden(True)
    run_folds(["a", "b"], lambda s: s, progress=True)
    assert capsys.readouterr().err == ""


def test_run_json_names_the_data_the_run_read(tmp_path, monkeypatch):
    """run.json's data block: the TESS dataset of the results files written, and CREMA-D's folder, clips and actors."""
    from ser_utils.course.publish import data_record
    from ser_utils.evaluation import FoldResult, make_record, save_record

    results = tmp_path / "results"
    fold = FoldResult(fold="f0", test_ids=[f"OAF_w{k}" for k in range(7)], y_true=list(range(7)), y_pred=list(range(7)),
                      n_train=1, n_val=1, epochs=1)
    dataset = {"name": "tess", "n_clips": 2800, "n_speakers": 2, "synthetic": False, "quick": False}
    for seed in (0, 1):  # two records of one dataset: one block
        save_record(make_record("logreg", "random", seed, [fold], dataset=dataset, wall_time=0.1), tmp_path)
    crema = tmp_path / "crema-d-dev"
    crema.mkdir()
    for name in ("1004_DFA_ANG_XX.wav", "1004_IEO_SAD_LO.wav", "1088_DFA_HAP_XX.wav", "notes.wav"):
        (crema / name).write_bytes(b"RIFF")
    monkeypatch.delenv("SER_CREMA_DIR", raising=False)
    assert data_record(results) == {"tess": [dataset], "crema_d": None}
    monkeypatch.setenv("SER_CREMA_DIR", str(crema))
    assert data_record(results)["crema_d"] == {"folder": "crema-d-dev", "n_clips": 3, "actors": ["1004", "1088"]}


def test_run_experiment_refuses_a_bad_epoch_cap_before_any_work():
    """``epochs=-1`` (e.g. a chapter's ``vision_epochs``) is one line naming the parameter, not a crash inside training."""
    from types import SimpleNamespace

    from ser_utils.experiments import run_experiment
    from ser_utils.settings import ParameterError

    ws = SimpleNamespace(mode=None)  # never reached: the cap is checked first
    for bad in (-1, 0, "many"):
        with pytest.raises(ParameterError, match="epochs must be"):
            run_experiment(ws, "vit", "random", 0, epochs=bad)
