"""What every chapter does first: resolve parameters, show the dataset banner, load the data.

A chapter's setup cell is one call::

    ch = start_chapter(dataset, data_dir, artifacts_dir, protocol, seed, epochs, quick)

which opens the library's :class:`~ser_utils.workspace.Workspace` (data
context, manifest, features, splits, run mode), sets the plot theme and
display options a page needs, and displays a banner that says plainly whether
the numbers below come from real TESS or from the synthetic demo corpus. A
:class:`Chapter` is that workspace plus the page's own ``protocol`` and
``seed`` parameters; everything else lives in the library.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..data import FULL_TESS_SIZE, ManifestSummary
from ..errors import ParameterError
from ..quiet import quiet_libraries
from ..run_context import DataContext
from ..settings import parse_int
from ..splits import PROTOCOLS
from ..workspace import RunMode, Workspace, open_workspace

if TYPE_CHECKING:
    import pandas as pd


def provenance() -> str:
    """"Executed <date> UTC with ser-book commit <sha>": which code made the numbers on a page (stale or not)."""
    from ..evaluation import git_commit

    commit = git_commit()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    return f"Executed {date} UTC with ser-book commit {commit[:10] + ('-dirty' if commit.endswith('-dirty') else '') if commit else 'unknown (not a git checkout)'}."


def banner_html(data: DataContext, summary: ManifestSummary | None = None, *, quick: bool = False) -> str:
    """The HTML banner naming the dataset of this run (orange for demo, green for real TESS)."""
    n = f"{summary.n_ok} clips" if summary else "clips"
    if data.is_demo:
        colour, title = "#fff3cd", "DEMO DATA: synthetic corpus, not TESS"
        body = (
            f"This run uses the synthetic TESS-shaped demo corpus ({n}, speakers SYNA/SYNB) generated "
            "by <code>ser_utils.synth</code>. Every number and figure on this page describes that toy "
            "corpus, <b>not</b> real speech. To run on real TESS, set <code>SER_TESS_DIR</code> or the "
            "<code>data_dir</code> parameter (see the introduction)."
        )
    else:
        colour, title = "#d1e7dd", "Real data: TESS"
        part = ""
        if summary is not None and not summary.is_full:
            part = f" This is a <b>partial</b> set ({summary.n_ok} of {FULL_TESS_SIZE} clips), so scores are not one-to-one comparable with the full corpus."
        body = f"This run uses real TESS recordings ({n}) from <code>{html.escape(str(data.data_dir))}</code>.{part}"
    mode = " Quick mode: tiny sizes and 1-2 epochs, for testing only." if quick else ""
    mode += f" {html.escape(provenance())}"
    return (
        f'<div style="background:{colour};border:1px solid #999;border-radius:6px;padding:0.6em 1em;'
        f'margin:0.5em 0"><b>{title}.</b> {body}{mode}</div>'
    )


def banner_text(ws: Workspace) -> str:
    """Plain-text form of the banner (for consoles and logs): the workspace's line and the provenance."""
    return ws.describe() + " " + provenance()


@dataclass
class Chapter(Workspace):
    """A chapter's workspace plus its page parameters (default protocol and seed)."""

    protocol: str = "random"
    seed: int = 0

    def banner(self) -> None:
        """Display the dataset banner (HTML in notebooks, text elsewhere)."""
        from IPython.display import display

        display({"text/html": banner_html(self.data, self.summary, quick=self.mode.quick),
                 "text/plain": banner_text(self)}, raw=True)


def page_theme() -> None:
    """The plot theme, display options and warning filters every page uses (global by nature: a notebook
    kernel is one page, so this is the page's choice, never the library's)."""
    import warnings

    import matplotlib
    import pandas as pd
    import seaborn as sns

    # Deprecation notices of the libraries (TensorFlow, transformers, pandas) say nothing about the chapter.
    warnings.filterwarnings("ignore", category=FutureWarning)
    # tqdm.auto falls back to text bars without ipywidgets; its notice about that is noise here.
    warnings.filterwarnings("ignore", message="IProgress not found")
    warnings.filterwarnings("ignore", message=".*is_categorical_dtype.*")

    sns.set_theme(context="notebook", style="whitegrid")
    matplotlib.rcParams["figure.dpi"] = 90
    # Our tables carry sentences (how to produce a missing result, why a clip failed): show them whole.
    pd.set_option("display.max_colwidth", None)
    _hide_default_index_in_html()


def frame_html(frame: pd.DataFrame) -> str:
    """A DataFrame's HTML as the page shows it: without the row numbers 0..n-1 of a default index.

    A ``RangeIndex`` from 0 with no name says nothing and costs a column of the page's width; any
    other index (models, emotions, speakers) is data and stays, as in pandas' own HTML.
    """
    import pandas as pd

    index = frame.index
    if isinstance(index, pd.RangeIndex) and (index.start, index.step, index.name) == (0, 1, None):
        return frame.to_html(index=False, max_rows=pd.get_option("display.max_rows"),
                             max_cols=pd.get_option("display.max_columns"),
                             show_dimensions=pd.get_option("display.show_dimensions"))
    return frame._repr_html_()


def _hide_default_index_in_html() -> None:
    """Show DataFrames through :func:`frame_html` in this kernel (text form: pandas' own)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is not None:
        import pandas as pd

        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, frame_html)


def start_chapter(
    dataset: str = "auto",
    data_dir: str | None = None,
    artifacts_dir: str | None = None,
    protocol: str = "random",
    seed: int = 0,
    epochs: int | None = None,
    quick: bool | None = None,
    *,
    show_banner: bool = True,
) -> Chapter:
    """A chapter's parameters cell made into a :class:`Chapter`; see the module docstring.

    The arguments are the chapter's ``parameters`` cell, in its order (see
    ARCHITECTURE.md); the workspace is opened by
    :func:`~ser_utils.workspace.open_workspace`.
    """
    if protocol not in PROTOCOLS:
        raise ParameterError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    seed = parse_int(seed, "seed")
    quiet_libraries()
    page_theme()
    ws = open_workspace(dataset, data_dir, artifacts_dir, mode=RunMode.resolve(quick, epochs))
    _normalise_notebook_parameters()
    chapter = Chapter(ws.data, ws.manifest, ws.summary, ws.feature_config, ws.mode, protocol=protocol, seed=seed)
    if show_banner:
        chapter.banner()
    return chapter


def _normalise_notebook_parameters() -> None:
    """Check and normalise the chapter's optional parameters (``seeds``, ``protocols``, ``full``) in the notebook.

    papermill's ``-p`` sets them as plain strings or numbers; see :func:`ser_utils.settings.normalise_chapter_parameters`.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is not None:
        from ..settings import normalise_chapter_parameters

        normalise_chapter_parameters(shell.user_ns)


def crema_banner(source, n_clips: int | None = None, n_actors: int | None = None) -> dict:
    """Chapter 9's banner for its second corpus (a ``run_context.CremaSource``), as a display bundle.

    Orange with how to get the real corpus when it is the synthetic stand-in,
    green (naming the subset) when it is real CREMA-D.
    """
    size = f"{n_clips} clips, {n_actors} actors" if n_clips is not None else "clips"
    if source.synthetic:
        title = "DEMO DATA: synthetic CREMA-D-shaped corpus, not CREMA-D"
        body = (f"No CREMA-D was given, so this chapter made a synthetic corpus in CREMA-D's layout ({size}, "
                f"actor ids from 9001) under <code>{html.escape(str(source.path))}</code>. Every CREMA-D number and "
                "figure computed on this page is <b>synthetic</b> and says nothing about real speech. To use real "
                "CREMA-D (Cao et al. 2014, Open Database License), clone its authors' repository "
                "<code>github.com/CheyneyComputerScience/CREMA-D</code> (audio in Git LFS) and set "
                "<code>SER_CREMA_DIR</code> to it, or pass the <code>crema_dir</code> parameter.")
        text = f"DEMO DATA: synthetic CREMA-D-shaped corpus ({size}); set SER_CREMA_DIR or crema_dir for real CREMA-D."
        colour = "#fff3cd"
    else:
        title = "Real data: CREMA-D"
        part = (f" This is a <b>subset</b> ({n_actors} of 91 actors): scores are not comparable with "
                "full-corpus figures." if n_actors is not None and n_actors < 91 else "")
        body = f"CREMA-D recordings ({size}) from <code>{html.escape(str(source.path))}</code>.{part}"
        text = f"Real data: CREMA-D ({size}) from {source.path}"
        colour = "#d1e7dd"
    return {"text/html": f'<div style="background:{colour};border:1px solid #999;border-radius:6px;'
                         f'padding:0.6em 1em;margin:0.5em 0"><b>{title}.</b> {body}</div>',
            "text/plain": text}
