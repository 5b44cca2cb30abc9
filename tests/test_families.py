"""A model family added through the registry alone: a toy k-NN on the 187 values, trained, saved, loaded,
used to predict and reported, with no library module edited (``ser_utils.registry.register_family``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ser_utils.evaluation import FoldResult, load_record
from ser_utils.experiments import run_experiment, scores_table
from ser_utils.registry import FoldJob, ModelFamily, ModelSpec, families, register_family, unregister_family


class KnnFamily(ModelFamily):
    """k nearest neighbours on the standardised 187-d vector; ``-k1`` asks for one neighbour."""

    name = "toy-knn"
    bases = ("knn",)
    suffixes = {"k1": ("flag", "k1")}
    options = frozenset({"metric"})

    def train_fold(self, ws, split, job: FoldJob) -> FoldResult:
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        fs = ws.features
        train, test = fs.index(split.train + split.val), fs.index(split.test)
        k = 1 if "k1" in job.spec.flags else 5
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(k, metric=job.options.get("metric", "euclidean")))
        model.fit(fs.vectors[train], fs.labels[train])
        extra = {}
        if job.model_dir is not None:
            path = Path(job.model_dir) / f"{job.spec.name}__{split.protocol}__{split.fold}__seed{job.seed}.pkl"
            extra["model_path"] = str(self.save(model, path, {"model": job.spec.name, "k": k}))
        pred = self.predict(model, fs.vectors[test]).argmax(axis=1)
        return FoldResult(fold=split.fold, test_ids=list(fs.ids[test]), y_true=fs.labels[test].tolist(),
                          y_pred=pred.tolist(), n_train=len(train), n_val=0, extra=extra)

    def save(self, model, path, sidecar):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps((model, sidecar)))
        return path

    def load(self, path):
        return pickle.loads(Path(path).read_bytes())

    def predict(self, model, x):
        # scikit-learn's probabilities cover the classes seen in training; widen them to all seven.
        probs = np.zeros((len(x), 7))
        probs[:, model.classes_] = model.predict_proba(x)
        return probs


@pytest.fixture
def knn():
    family = register_family(KnnFamily())
    yield family
    unregister_family(family.name)


def test_a_family_registered_at_run_time_trains_saves_loads_predicts_and_reports(knn, quick_chapter):
    spec = ModelSpec.parse("knn-k1")
    assert spec.family is knn and spec.flags == {"k1"} and spec.name == "knn-k1"
    assert ModelSpec.parse("knn").name == "knn"

    record = run_experiment(quick_chapter, "knn-k1", "speaker", 0, options={"metric": "manhattan"}, progress=False)
    assert load_record(Path(record["_path"]))["model"] == "knn-k1"
    assert len(record["folds"]) == 2 and record["config"]["metric"] == "manhattan"

    fs = quick_chapter.features
    for fold in record["folds"]:  # the saved model, loaded back, predicts what the fold recorded
        model, sidecar = knn.load(fold["model_path"])
        assert sidecar == {"model": "knn-k1", "k": 1}
        ids = fold["predictions"]["ids"]
        again = knn.predict(model, fs.vectors[fs.index(ids)]).argmax(axis=1)
        assert again.tolist() == fold["predictions"]["y_pred"]

    table = scores_table([record])
    assert table["model"].tolist() == ["knn-k1"] and table["protocol"].tolist() == ["speaker"]
    assert float(table["UAR %"].iloc[0]) == pytest.approx(100 * record["metrics"]["uar"], abs=0.05)


def test_the_registry_refuses_what_the_family_does_not_accept(knn, quick_chapter):
    with pytest.raises(ValueError, match="unknown model variant"):
        ModelSpec.parse("knn-frames")
    with pytest.raises(ValueError, match="unknown option"):
        run_experiment(quick_chapter, "knn", "random", 0, options={"epochs": 3}, save=False, progress=False)
    with pytest.raises(ValueError, match="already registered"):
        register_family(KnnFamily())


def test_unregistered_names_are_unknown_again(knn):
    unregister_family(knn.name)
    assert "toy-knn" not in families()
    with pytest.raises(ValueError, match="unknown model 'knn'"):
        ModelSpec.parse("knn")
    register_family(knn)  # the fixture unregisters it again
