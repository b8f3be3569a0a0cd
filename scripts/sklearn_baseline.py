#!/usr/bin/env python3
"""scikit-learn logistic regression on the same split and columns as `leadscore train --table`.

Usage: sklearn_baseline.py TABLE.csv PREDICTIONS.csv --label Converted --id-column "Prospect ID" \
           --exclude "Lead Number,Tags,..."
PREDICTIONS.csv is the `--predictions` output of `leadscore train` (its `split` column fixes the
holdout). Prints the holdout ROC AUC of scikit-learn's LogisticRegression (one-hot categoricals
with "missing" as a level, median-imputed standardised numerics) and, as a cross-check of
leadscore's own AUC code, sklearn's roc_auc_score of leadscore's holdout probabilities.
"""
import argparse

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ap = argparse.ArgumentParser()
ap.add_argument("table")
ap.add_argument("predictions")
ap.add_argument("--label", required=True)
ap.add_argument("--id-column", required=True)
ap.add_argument("--exclude", default="")
ap.add_argument("--missing", default="Select,NA,N/A,null")
a = ap.parse_args()

df = pd.read_csv(a.table, dtype=str, keep_default_na=False)
df = df.loc[:, [c for c in df.columns if c.strip() and not c.startswith("Unnamed")]]
drop = set()
for p in [x.strip() for x in a.exclude.split(",") if x.strip()]:
    for c in df.columns:
        if (p.endswith("*") and c.lower().startswith(p[:-1].lower())) or c.lower() == p.lower():
            drop.add(c)
missing = {m.lower() for m in a.missing.split(",")} | {""}
y = df[a.label].astype(float).astype(int).values
ids = df[a.id_column].values
X = df.drop(columns=list(drop | {a.label, a.id_column}))
X = X.apply(lambda s: s.map(lambda v: np.nan if v.strip().lower() in missing else v.strip()))
numeric = [c for c in X.columns if pd.to_numeric(X[c].dropna(), errors="coerce").notna().all()]
categorical = [c for c in X.columns if c not in numeric]
for c in numeric:
    X[c] = pd.to_numeric(X[c])
X[categorical] = X[categorical].fillna("missing")

pred = pd.read_csv(a.predictions, dtype={"lead_id": str})
split = dict(zip(pred.lead_id, pred.split))
hold = np.array([split[i] == "holdout" for i in ids])

pre = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
])
model = make_pipeline(pre, LogisticRegression(max_iter=5000))
model.fit(X[~hold], y[~hold])
auc = roc_auc_score(y[hold], model.predict_proba(X[hold])[:, 1])
h = pred[pred.split == "holdout"]
ours = roc_auc_score(h.converted, h.probability)
print(f"columns: {len(numeric)} numeric, {len(categorical)} categorical; "
      f"train {int((~hold).sum())}, holdout {int(hold.sum())}")
print(f"scikit-learn LogisticRegression holdout ROC AUC: {auc:.4f}")
print(f"leadscore holdout ROC AUC (sklearn's roc_auc_score on its probabilities): {ours:.4f}")
