"""Resume stamps: what a chapter ran with (parameters, source, the code it imports, the data it reads).

The book runner (:mod:`.runner`) writes one stamp per executed chapter and
skips a chapter whose stamp still matches. The stamps are ours on purpose:
jupyter-cache keys a notebook on its code cells only, so it cannot see papermill
parameters, the data or a change to ``ser_utils``. The code part is the
sources of the ``ser_utils`` modules the chapter imports, followed through
their own imports (module level and inside functions, and the model families
the registry loads by name): an edit to chapter 10's encoders leaves chapter 1
up to date.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

#: Environment variables that change what a chapter computes; part of the resume stamp.
STAMP_ENVIRONMENT = ("SER_ARTIFACTS_DIR", "SER_TESS_DIR", "SER_CREMA_DIR")
#: The package whose sources are hashed into the stamps (``ser_utils``, this module's grandparent).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Memo of this run's kernel-package, code and data digests (:func:`forget`).
_MEMO: dict = {}


def forget(kind: str | None = None) -> None:
    """Drop the memoised digests (all, or one kind: ``"data"``), so they are computed afresh."""
    for key in [k for k in _MEMO if kind is None or k[0] == kind]:
        del _MEMO[key]


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the source notebook's identity in a stamp)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def kernel_package_dir(cwd: str | os.PathLike | None = None, env: dict | None = None) -> Path:
    """The ``ser_utils`` folder a chapter kernel started in ``cwd`` (with environment ``env``) actually imports.

    Not necessarily this process's: from a second clone, ``python -m ser_utils book`` imports the
    clone's package while the kernels (cwd ``book/``) import whatever the editable install points at.
    Asked once per folder and run, with the kernels' own interpreter and environment.
    """
    key = ("kernel", str(cwd))
    if key not in _MEMO:
        probe = "import os, ser_utils; print(os.path.dirname(os.path.abspath(ser_utils.__file__)))"
        try:
            out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
                                 timeout=120)
            found = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            found = ""
        _MEMO[key] = Path(found) if found else PACKAGE_DIR
    return _MEMO[key]


def _imports(tree: ast.AST, here: str) -> set[str]:
    """The ``ser_utils`` modules (dotted, package-relative) one source imports; ``here`` is its own module."""
    package = here.rsplit(".", 1)[0] if "." in here else ""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("ser_utils.") for a in node.names if a.name.startswith("ser_utils.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").split(".")[0] == "ser_utils":
                module = node.module.removeprefix("ser_utils").lstrip(".")
            else:
                continue
            found.add(module)
            found |= {f"{module}.{a.name}".lstrip(".") for a in node.names}  # "from . import x": x may be a module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("ser_utils."):
            found.add(node.value.split(":")[0].removeprefix("ser_utils."))  # the registry's "ser_utils.m:FAMILY"
    return found


def module_files(roots: set[str], package_dir: Path) -> list[Path]:
    """The files of ``roots`` and of every ``ser_utils`` module they import, transitively (with the packages' ``__init__``)."""
    def path_of(module: str) -> Path | None:
        base = package_dir.joinpath(*module.split(".")) if module else package_dir
        for p in (base.with_suffix(".py"), base / "__init__.py"):
            if p.is_file():
                return p
        return None

    seen: dict[Path, str] = {}
    todo = [*roots, ""]
    while todo:
        module = todo.pop()
        path = path_of(module)
        if path is None or path in seen:
            continue
        seen[path] = module
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages on the way
        here = module + (".__init__" if path.name == "__init__.py" else "")
        todo += sorted(_imports(ast.parse(path.read_text(encoding="utf-8")), here))
    return sorted(seen)


def chapter_imports(notebook: str | os.PathLike) -> set[str] | None:
    """The ``ser_utils`` modules a chapter's code cells import; None when a cell cannot be parsed (hash everything)."""
    import nbformat

    found: set[str] = set()
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        try:
            found |= _imports(ast.parse(code), "__chapter__")
        except SyntaxError:
            return None
    return found


def code_hash(notebook: str | os.PathLike, cwd: str | os.PathLike | None = None, env: dict | None = None) -> str:
    """SHA-256 over the sources of the ``ser_utils`` modules ``notebook`` reaches, as the kernel imports them."""
    folder = kernel_package_dir(cwd, env)
    key = ("code", str(folder), str(notebook))
    if key not in _MEMO:
        roots = chapter_imports(notebook)
        files = sorted(folder.rglob("*.py")) if roots is None else module_files(roots, folder)
        h = hashlib.sha256(str(folder).encode())
        for path in files:
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def data_folders(parameters: dict) -> list[Path]:
    """The audio folders a chapter may read: the run's corpus, and chapter 9's CREMA-D (real or synthetic)."""
    folders = [Path(parameters["corpus_dir"])] if parameters.get("corpus_dir") else []
    crema = os.environ.get("SER_CREMA_DIR")
    if crema:
        folders.append(Path(crema).expanduser())
    elif parameters.get("results_dir"):
        folders.append(Path(parameters["results_dir"]).parent / "demo_crema")
    return folders


def data_digest(parameters: dict) -> dict:
    """Digest of every audio file (name and whole content) in :func:`data_folders`, per folder.

    Part of every stamp, so a clip removed, added or edited in place makes the chapters stale
    (the page would otherwise keep describing the old data).
    """
    from ..cache import cache_key
    from ..data import find_audio_files

    out = {}
    for folder in data_folders(parameters):
        key = ("data", str(folder))
        if key not in _MEMO:
            files = find_audio_files(folder) if folder.is_dir() else []
            _MEMO[key] = (cache_key({"folder": 1}, [(str(f.relative_to(folder)), f) for f in files])
                          if files else "absent")
        out[str(folder)] = _MEMO[key]
    return out


def stamp_environment(notebook: str | os.PathLike, parameters: dict | None = None, *,
                      env: dict | None = None) -> dict:
    """What besides its parameters a chapter's page depends on: environment variables, its code, its data."""
    stamp = {**{k: os.environ.get(k) for k in STAMP_ENVIRONMENT},
             "ser_utils_sha256": code_hash(notebook, Path(notebook).parent, env)}
    if parameters is not None:
        stamp["data"] = data_digest(parameters)
    return stamp


def normalise(obj):
    """JSON round trip, so a stamp read back compares equal to the parameters it stored."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def read_stamp(path: Path) -> dict | None:
    """The stamp stored next to an executed chapter, or None when absent, unreadable or not a stamp."""
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def is_up_to_date(executed: Path, stamp: dict | None, parameters: dict, source_hash: str,
                  environment: dict) -> bool:
    """True when ``executed`` ran without error with these parameters, source, code and data."""
    want = {"status": "ok", "source_sha256": source_hash, "parameters": normalise(parameters),
            "environment": normalise(environment)}
    return executed.exists() and stamp is not None and all(stamp.get(k) == v for k, v in want.items())
