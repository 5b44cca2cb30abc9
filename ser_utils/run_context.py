"""Resolving where a run's data and artifacts are: which dataset, which folders.

:func:`resolve_data` answers the questions once: is real TESS here, or do we
run on the synthetic demo corpus, and which artifacts folder holds the run?
The answer is a :class:`DataContext` that the workspace
(:mod:`ser_utils.workspace`), the manifest and the results files all read, so
a demo result can never be presented as a TESS one. How long a run trains
(quick mode, epoch cap) is the workspace's :class:`~ser_utils.run_context.RunMode`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .data import TESS_HELP, TessNotFoundError, find_audio_files
from .settings import artifacts_root, env_bool, env_data_dir, parse_bool, parse_dataset, parse_epochs

#: Words in the demo corpus: full run and quick (CI) run.
DEMO_WORDS = 30
DEMO_WORDS_QUICK = 10


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``), else the current folder."""
    here = Path(__file__).resolve().parent
    for parent in (here, *here.parents):
        if (parent / "pyproject.toml").exists() and (parent / "ser_utils").is_dir():
            return parent
    return Path.cwd()


def default_artifacts_root() -> Path:
    """Where every run's artifacts folder lives: ``SER_ARTIFACTS_DIR`` (checked), else ``<project>/artifacts``."""
    return artifacts_root(project_root() / "artifacts")


def env_flag(name: str) -> bool:
    """The yes/no environment variable ``name`` (see :mod:`ser_utils.settings`; a value outside it is refused)."""
    return env_bool(name)


def is_quick(quick: bool | str | None = None) -> bool:
    """Quick mode (tiny sizes for CI): the parameter if given (``"no"`` is no), else ``SER_QUICK``."""
    value = parse_bool(quick, "quick")
    return env_bool("SER_QUICK") if value is None else value


def tess_candidates(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for TESS, in order: the parameter, ``SER_TESS_DIR``, ``data/TESS``."""
    out: list[Path] = []
    if data_dir:
        out.append(Path(data_dir).expanduser())
    if os.environ.get("SER_TESS_DIR"):
        out.append(Path(os.environ["SER_TESS_DIR"]).expanduser())
    out.append(project_root() / "data" / "TESS")
    return out


def find_tess(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first candidate folder that holds audio files, or None.

    Without ``data_dir``, a ``SER_TESS_DIR`` that is a file, missing or holds no
    audio is an error (:class:`~ser_utils.errors.ParameterError`), as for
    ``SER_CREMA_DIR``: never a silent fall-back to the demo corpus.
    """
    if not data_dir:
        env_data_dir("SER_TESS_DIR", help_text=TESS_HELP.splitlines()[0] if TESS_HELP else "")
    for candidate in tess_candidates(data_dir):
        if candidate.is_dir() and find_audio_files(candidate):
            return candidate
    return None


@dataclass(frozen=True)
class DataContext:
    """Where one run's data and artifacts are: the dataset, its folder, the artifacts folder."""

    dataset: str  # "tess" or "demo"
    data_dir: Path
    artifacts_dir: Path

    @property
    def is_demo(self) -> bool:
        return self.dataset == "demo"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["data_dir"], d["artifacts_dir"] = str(self.data_dir), str(self.artifacts_dir)
        return d


@dataclass(frozen=True)
class RunMode:
    """How long a run trains: quick mode (tiny sizes, for CI) and the epoch cap.

    ``epochs`` None means "the family's default" (early stopping within the
    family's cap, or its quick-mode cap). The clip cap (training clips kept in
    quick mode) is per family, asked through :meth:`clip_cap`.
    """

    quick: bool = False
    epochs: int | None = None

    @classmethod
    def resolve(cls, quick: bool | None = None, epochs: int | None = None) -> RunMode:
        """The mode of a run: ``quick`` if given (``"no"`` is no), else ``SER_QUICK``; ``epochs`` a positive
        integer (a meaningless value of either raises :class:`~ser_utils.errors.ParameterError`)."""
        return cls(is_quick(quick), parse_epochs(epochs))

    def epoch_cap(self, full: int, quick: int) -> int:
        """The epoch cap: the given ``epochs``, else the family's ``quick`` or ``full`` default."""
        return self.epochs if self.epochs else (quick if self.quick else full)

    def clip_cap(self, quick_cap: int) -> int | None:
        """Training clips kept per fold: the family's ``quick_cap`` in quick mode, all otherwise (None)."""
        return quick_cap if self.quick else None


def resolve_data(
    dataset: str = "auto",
    data_dir: str | os.PathLike | None = None,
    artifacts_dir: str | os.PathLike | None = None,
    *,
    quick: bool | None = None,
    make_demo: bool = True,
) -> DataContext:
    """Turn a run's data parameters into a :class:`DataContext`.

    ``dataset="auto"`` uses real TESS when a candidate folder holds audio
    (:func:`tess_candidates`) and the demo corpus otherwise; ``"tess"`` insists
    on TESS and raises :class:`TessNotFoundError` naming every folder it
    tried; ``"demo"`` always uses the demo corpus, generating it on first use
    under the artifacts folder. ``SER_DATASET`` overrides ``"auto"``. Quick
    mode (``quick``, else ``SER_QUICK``) picks the ``-quick`` artifacts folder
    and the smaller demo corpus. Every value (and ``SER_QUICK``,
    ``SER_TESS_DIR``, ``SER_ARTIFACTS_DIR``) is checked by
    :mod:`ser_utils.settings`: a meaningless one raises
    :class:`~ser_utils.errors.ParameterError`.
    """
    dataset = parse_dataset(dataset)
    quick = is_quick(quick)
    root = None
    if data_dir and Path(data_dir).expanduser().is_file():
        raise TessNotFoundError(f"data folder {str(data_dir)!r} is a file, not a folder: give the folder that "
                                "holds the clips (for one clip, use `python -m ser_utils predict CLIP`)")
    if dataset in {"auto", "tess"}:
        root = find_tess(data_dir)
        if root is None and (dataset == "tess" or data_dir):
            looked = "\n".join(f"  - {c}" for c in tess_candidates(data_dir))
            raise TessNotFoundError(f"no TESS audio found. Looked in:\n{looked}\n{TESS_HELP}")
    if root is not None:
        from .synth import is_demo_corpus

        if is_demo_corpus(root):  # a demo corpus passed as data_dir is never recorded as TESS
            if dataset == "tess":
                raise TessNotFoundError(f"{root} holds the synthetic demo corpus (speakers SYNA/SYNB), not TESS; "
                                        "use --dataset demo (notebook: dataset='demo') or point at real TESS")
            dataset = "demo"
    name = "tess" if root is not None and dataset != "demo" else "demo"
    if artifacts_dir is None:
        artifacts_dir = default_artifacts_root()
        # Quick runs get their own folder so they never overwrite the results of a full run.
        artifacts_dir = Path(artifacts_dir) / (name + ("-quick" if quick else ""))
    artifacts_dir = Path(artifacts_dir).expanduser().resolve()
    from .outputs import check_output_path, make_output_dir

    check_output_path(artifacts_dir, kind="dir", what="artifacts folder")
    make_output_dir(artifacts_dir, what="artifacts folder")
    if root is None:
        root = artifacts_dir / "demo_corpus"
        if make_demo:
            from .synth import ensure_demo_corpus

            ensure_demo_corpus(root, n_words=DEMO_WORDS_QUICK if quick else DEMO_WORDS, seed=0)
    return DataContext(dataset=name, data_dir=Path(root).resolve(), artifacts_dir=artifacts_dir)


# --- the second corpus (chapter 9) ---------------------------------------------------------

#: Synthetic CREMA-D size (actors, sentences): full run and quick (CI) run.
DEMO_CREMA = (8, 4)
DEMO_CREMA_QUICK = (6, 2)


@dataclass(frozen=True)
class CremaSource:
    """Where chapter 9's CREMA-D comes from: a real folder, or the synthetic stand-in."""

    path: Path
    synthetic: bool
    looked_in: tuple[str, ...] = ()


def crema_candidates(crema_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for CREMA-D, in order: the parameter, ``SER_CREMA_DIR``."""
    out = [Path(crema_dir).expanduser()] if crema_dir else []
    if os.environ.get("SER_CREMA_DIR"):
        out.append(Path(os.environ["SER_CREMA_DIR"]).expanduser())
    return out


def resolve_crema(crema_dir: str | os.PathLike | None, artifacts_dir: str | os.PathLike,
                  quick: bool = False) -> CremaSource:
    """The CREMA-D folder to use: ``crema_dir``, else ``SER_CREMA_DIR``, else a synthetic one.

    The first folder named that holds no audio raises
    :class:`~ser_utils.errors.UserError` (with where to get CREMA-D); with no
    folder named, the synthetic CREMA-D-shaped corpus is written under
    ``<artifacts_dir>/demo_crema`` and marked ``synthetic``.
    """
    from .corpora import CREMA_HELP
    from .errors import UserError
    from .synth import ensure_demo_crema, is_demo_corpus

    tried = crema_candidates(crema_dir)
    if tried:  # a folder named (parameter first, then SER_CREMA_DIR) must hold the audio: no silent fallback
        folder = tried[0]
        if not (folder.is_dir() and find_audio_files(folder)):
            raise UserError(f"no CREMA-D audio in {folder}. {CREMA_HELP}")
        return CremaSource(folder.resolve(), is_demo_corpus(folder), tuple(map(str, tried)))
    n_actors, n_sentences = DEMO_CREMA_QUICK if quick else DEMO_CREMA
    root = ensure_demo_crema(Path(artifacts_dir) / "demo_crema", n_actors=n_actors, n_sentences=n_sentences)
    return CremaSource(root.resolve(), True)
