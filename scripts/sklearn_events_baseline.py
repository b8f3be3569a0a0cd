#!/usr/bin/env python3
"""scikit-learn logistic regression on the same information as `leadscore train --events`.

Usage: sklearn_events_baseline.py EVENTS.ndjson OUTCOMES.csv PREDICTIONS.csv
Features per lead (events strictly before converted_at): counts of page views per first URL
path segment, of long page views, of email opens and clicks (all and per campaign), of forms
(per form_id and offer stage), log-transformed; the latest value of each profile field
(one-hot; numeric fields log-transformed; email reduced to its domain). The split is the
`split` column of leadscore's predictions, so both models are judged on the same holdout.
"""
import json
import math
import sys
from collections import defaultdict
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MaxAbsScaler
from sklearn.pipeline import make_pipeline


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


events_path, outcomes_path, preds_path = sys.argv[1:4]
out = pd.read_csv(outcomes_path, dtype={"lead_id": str}, keep_default_na=False)
cut = {r.lead_id: (ts(r.converted_at) if r.converted_at else math.inf) for r in out.itertuples()}
counts = defaultdict(lambda: defaultdict(float))
profile = defaultdict(dict)
for line in open(events_path):
    try:
        e = json.loads(line)
        lead, t = e["lead_id"], ts(e["ts"])
    except Exception:
        continue
    if lead not in cut or t >= cut[lead]:
        continue
    c = counts[lead]
    kind = e.get("type")
    if kind == "page_view":
        path = e.get("url", "").split("://", 1)[-1]
        path = "/" + path.split("/", 1)[1] if "/" in path else "/"
        seg = path.split("?")[0].split("/")[1] if path != "/" else ""
        c["pv"] += 1
        c["pv:" + seg] += 1
        if e.get("duration_s", 0) >= 30:
            c["pv_long:" + seg] += 1
    elif kind in ("email_open", "click"):
        c[kind] += 1
        c[kind + ":" + str(e.get("campaign_id"))] += 1
    elif kind == "form_conversion":
        c["form"] += 1
        c["form:" + str(e.get("form_id"))] += 1
        c["stage:" + str(e.get("offer_stage"))] += 1
        for k, v in (e.get("fields") or {}).items():
            old = profile[lead].get(k)
            if old is None or t >= old[0]:
                profile[lead][k] = (t, v)

rows = []
for lead in out.lead_id:
    f = {k: math.log1p(v) for k, v in counts[lead].items()}
    for k, (_, v) in profile[lead].items():
        if k == "email":
            k, v = "email_domain", str(v).rsplit("@", 1)[-1].lower()
        try:
            f[k] = math.log1p(max(float(v), 0.0))
        except (TypeError, ValueError):
            f[k + "=" + str(v).lower()] = 1.0
    rows.append(f)
y = out.converted.astype(int).values
pred = pd.read_csv(preds_path, dtype={"lead_id": str})
split = dict(zip(pred.lead_id, pred.split))
hold = np.array([split[i] == "holdout" for i in out.lead_id])
vec = DictVectorizer()
X = vec.fit_transform(rows)
model = make_pipeline(MaxAbsScaler(), LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=5000))
model.fit(X[~hold], y[~hold])
auc = roc_auc_score(y[hold], model.predict_proba(X[hold])[:, 1])
h = pred[pred.split == "holdout"]
print(f"features {X.shape[1]}; train {int((~hold).sum())}, holdout {int(hold.sum())}")
print(f"scikit-learn LogisticRegressionCV holdout ROC AUC: {auc:.4f}")
print(f"leadscore holdout ROC AUC: {roc_auc_score(h.converted, h.probability):.4f}")
