"""Usage: python head_search.py CHECKPOINT TESS_DIR CREMA_DIR ARTIFACTS OUT.json

Which read-out of Whisper tiny.en for TESS's speaker protocol? Chosen on CREMA-D-dev leave-one-actor-out only.

Every candidate head is scored on CREMA-D's 12 actors (leave one out); the best one there is the choice,
fixed before TESS is looked at. The TESS speaker scores of all candidates are printed after, for the record
(choosing among them by TESS would use the test actress).
"""
import json, sys, time
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from ser_utils.corpora import get_corpus
from ser_utils.data import build_manifest, usable
from ser_utils.encoders import ensure_embeddings, load_encoder
from ser_utils.evaluation import compute_metrics
from ser_utils.labels import EMOTIONS
from ser_utils.splits import actor_folds, make_splits

ART = sys.argv[4]  # artifacts folder for the embedding caches
enc = load_encoder(sys.argv[1])  # the converted offline Whisper tiny.en (whisper_offline.convert)
mt = usable(build_manifest(sys.argv[2], progress=False))
mc = usable(build_manifest(sys.argv[3], corpus=get_corpus("crema-d"), progress=False))
t = time.perf_counter()
et = ensure_embeddings(mt, ART, enc, progress=False)
ec = ensure_embeddings(mc, ART, enc, progress=False)
print(f"embeddings: {len(et)} TESS + {len(ec)} CREMA-D in {time.perf_counter() - t:.0f} s", flush=True)

def feats(emb, head):
    layers, std = head["layers"], head["std"]
    parts = [emb.mean[:, k] for k in layers] + ([emb.std[:, k] for k in layers] if std else [])
    return np.hstack(parts)

def score(emb, splits, head, emotions):
    x = feats(emb, head)
    y = emb.meta["emotion"].map(EMOTIONS.index).to_numpy()
    classes = sorted(EMOTIONS.index(e) for e in emotions)
    uars = []
    for s in splits:
        tr, te = emb.index(s.train), emb.index(s.test)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=head["C"], max_iter=3000, random_state=0))
        clf.fit(x[tr], y[tr])
        uars.append(compute_metrics(y[te], clf.predict(x[te]), classes=classes)["uar"])
    return 100 * float(np.mean(uars))

heads = []
for C in (0.003, 0.01, 0.03):
    for k in range(5):
        heads.append({"layers": [k], "std": False, "C": C})
        heads.append({"layers": [k], "std": True, "C": C})
    for ls in ([2, 3], [1, 2, 3, 4], [0, 1, 2, 3, 4]):
        heads.append({"layers": ls, "std": False, "C": C})
        heads.append({"layers": ls, "std": True, "C": C})
crema_splits = actor_folds(mc, seed=0)
tess_splits = make_splits(mt, "speaker", 0)
rows = []
for h in heads:
    c = score(ec, crema_splits, h, get_corpus("crema-d").emotions)
    rows.append({**h, "crema_loao": c})
    print(json.dumps(rows[-1]), flush=True)
best = max(rows, key=lambda r: r["crema_loao"])
print("CHOSEN on CREMA-D:", json.dumps(best), flush=True)
for r in rows:
    r["tess_speaker"] = score(et, tess_splits, r, EMOTIONS)
    print(json.dumps(r), flush=True)
json.dump({"chosen": best, "rows": rows}, open(sys.argv[5], "w"), indent=1)
