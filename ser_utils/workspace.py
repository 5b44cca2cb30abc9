"""The library's workspace: one run's data, manifest, features, splits and run mode, resolved once.

Every library entry point that trains or explains a model
(:func:`~ser_utils.experiments.run_experiment`,
:func:`~ser_utils.experiments.run_grid`, :mod:`ser_utils.gradcam_reference`,
:func:`ser_utils.grid.job_workspace` on a grid's workers),
the command line and the benchmarks take a :class:`Workspace`::

    ws = open_workspace("demo", mode=RunMode(quick=True))
    record = run_experiment(ws, "cnn", "random", 0)

It holds the :class:`~ser_utils.run_context.DataContext` (which dataset, which
folders), the manifest and its summary, the feature configuration, the
features (computed once, then read from the cache), the saved splits, and one
:class:`RunMode` (quick mode and the epoch cap) that every model family reads
instead of threading ``quick`` and ``epochs`` through its calls. A book
chapter builds on it (adding its banner and plot theme); nothing here knows
about pages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from .data import FULL_TESS_SIZE, ManifestSummary, build_manifest, summarise_manifest
from .features import FeatureConfig, FeatureSet, ensure_features, quick_config
from .run_context import DataContext, RunMode, resolve_data
from .splits import Split, ensure_splits


@dataclass
class Workspace:
    """The resolved inputs of one run: data context, manifest, feature configuration, run mode."""

    data: DataContext
    manifest: pd.DataFrame
    summary: ManifestSummary
    feature_config: FeatureConfig
    mode: RunMode
    feature_jobs: int | None = None  # processes for features the cache lacks (None: all cores)
    feature_progress: bool = True  # progress bar while extracting (off on a grid's workers)

    @property
    def artifacts_dir(self) -> Path:
        """The run's artifacts folder (features, splits, models, results)."""
        return self.data.artifacts_dir

    @property
    def models_dir(self) -> Path:
        """Where trained models are saved."""
        return self.data.artifacts_dir / "models"

    @property
    def results_dir(self) -> Path:
        """Where results files are written."""
        return self.data.artifacts_dir / "results"

    @cached_property
    def features(self) -> FeatureSet:
        """Features of every usable clip (computed once, then read from the cache)."""
        return ensure_features(self.manifest, self.data.artifacts_dir, self.feature_config, jobs=self.feature_jobs,
                               progress=self.feature_progress)

    def splits(self, protocol: str, seed: int) -> list[Split]:
        """The folds of ``protocol`` with ``seed``, saved under ``splits/``."""
        return ensure_splits(self.manifest, self.data.artifacts_dir, protocol, seed)

    def describe(self) -> str:
        """One line naming the data of this run (demo or real, how many clips, quick mode)."""
        n = f"{self.summary.n_ok} clips"
        if self.data.is_demo:
            text = f"DEMO DATA: synthetic corpus ({n}), not TESS. Numbers describe the toy corpus only."
        else:
            text = f"Real data: TESS ({n}, {'full' if self.summary.is_full else 'partial'} set) from {self.data.data_dir}"
        return text + (" [quick mode]" if self.mode.quick else "")


def open_workspace(
    dataset: str = "auto",
    data_dir: str | os.PathLike | None = None,
    artifacts_dir: str | os.PathLike | None = None,
    *,
    mode: RunMode | None = None,
) -> Workspace:
    """Resolve the data (:func:`~ser_utils.run_context.resolve_data`), build the manifest, pick the features.

    ``mode`` defaults to :meth:`RunMode.resolve` (quick when ``SER_QUICK=1``).
    The manifest is written to ``<artifacts>/manifest.csv`` each time (through
    the atomic writer), so the artifacts folder always describes the data the
    run actually used. Nothing global (plot styles, display options) is touched.
    """
    from .outputs import atomic_write

    mode = mode or RunMode.resolve()
    data = resolve_data(dataset, data_dir, artifacts_dir, quick=mode.quick)
    manifest = build_manifest(data.data_dir, progress=False)
    with atomic_write(data.artifacts_dir / "manifest.csv", what="manifest") as tmp:
        manifest.to_csv(tmp, index=False)
    expected = len(manifest) if data.is_demo else FULL_TESS_SIZE
    summary = summarise_manifest(manifest, expected_size=expected)
    return Workspace(data, manifest, summary, quick_config() if mode.quick else FeatureConfig(), mode)
