#!/usr/bin/env python3
"""Holdout ROC AUC of `leadscore train` (scored through `replay`) beside scikit-learn logistic
regression, HistGradientBoosting and InterpretML's Explainable Boosting Machine (main effects
only) on per-lead aggregates of the same event history and the same split.

Usage: compare_models.py EVENTS.ndjson OUTCOMES.csv PREDICTIONS.csv SCORES.ndjson [--seed S]
       compare_models.py --cut EVENTS.ndjson OUTCOMES.csv OUT.ndjson   (the history cut before
       each lead's conversion, leads without an outcome left out: what replay scores)
  PREDICTIONS.csv: `leadscore train --predictions` (its `split` column fixes the split);
  SCORES.ndjson:   `leadscore replay --scores` of the learned rules over the history cut just
                   before each lead's conversion (what `train` fits on).
Prints one line: `auc leadscore=… lr=… hgb=… ebm=…`.

Aggregates per lead (events strictly before converted_at): counts of page views per first URL
segment, opens and clicks per campaign, forms per form id and stage; total, mean and max dwell;
visits (page views less than 30 min apart), pages per visit (mean, max); days active and days
from the last event to the end of the history; the latest value of each profile field (numbers
as numbers, text one-hot for LR and as categories for the trees).
"""
import argparse
import json
import math
from collections import defaultdict
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

GAP = 30 * 60


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def segment(url):
    path = url.split("://", 1)[-1]
    path = path.split("/", 1)[1] if "/" in path else ""
    return path.split("?")[0].split("#")[0].split("/")[0]


def aggregates(events_path, cut):
    num = defaultdict(lambda: defaultdict(float))
    profile = defaultdict(dict)
    times = defaultdict(list)
    end = -math.inf
    for line in open(events_path):
        try:
            e = json.loads(line)
            lead, t = e["lead_id"], ts(e["ts"])
        except Exception:
            continue
        end = max(end, t)
        if lead not in cut or t >= cut[lead] or e.get("type") == "lead_outcome":
            continue
        c, kind = num[lead], e.get("type")
        times[lead].append(t)
        if kind == "page_view":
            d = float(e.get("duration_s") or 0.0)
            seg = segment(e.get("url", ""))
            c["pv"] += 1
            c["pv:" + seg] += 1
            c["dwell_total"] += d
            c["dwell:" + seg] += d
            c["dwell_max"] = max(c["dwell_max"], d)
            c.setdefault("_pv_times", [])
            c["_pv_times"].append(t)
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
    return num, profile, times, end


def visit_stats(pv_times):
    if not pv_times:
        return 0, 0.0, 0
    pv_times.sort()
    visits, pages, current = 0, [], 0
    last = -math.inf
    for t in pv_times:
        if t - last >= GAP:
            if current:
                pages.append(current)
            visits, current = visits + 1, 0
        current += 1
        last = t
    pages.append(current)
    return visits, float(np.mean(pages)), max(pages)


def frame(leads, num, profile, times, end):
    rows = []
    for lead in leads:
        c = dict(num[lead])
        pv_times = c.pop("_pv_times", [])
        visits, ppv_mean, ppv_max = visit_stats(pv_times)
        f = {k: float(v) for k, v in c.items()}
        f.update(visits=visits, ppv_mean=ppv_mean, ppv_max=ppv_max,
                 dwell_mean=c.get("dwell_total", 0.0) / max(1.0, c.get("pv", 0.0)))
        ts_ = times[lead]
        f["days_active"] = (max(ts_) - min(ts_)) / 86400 if ts_ else 0.0
        f["days_since_last"] = (end - max(ts_)) / 86400 if ts_ else 1e3
        for k, (_, v) in profile[lead].items():
            if k == "email":
                k, v = "email_domain", str(v).rsplit("@", 1)[-1].lower()
            try:
                f["p:" + k] = float(v)
            except (TypeError, ValueError):
                f["c:" + k] = str(v).lower()
        rows.append(f)
    df = pd.DataFrame(rows)
    numeric = [c for c in df.columns if not c.startswith("c:")]
    cats = [c for c in df.columns if c.startswith("c:")]
    for c in cats:  # at most 100 levels (the trees take 255): the rest is "other"
        top = set(df[c].value_counts().index[:100])
        df[c] = df[c].where(df[c].isna() | df[c].isin(top), "other")
    count_like = [c for c in numeric if not c.startswith("p:")]
    df[count_like] = df[count_like].fillna(0.0)
    return df, numeric, cats


def write_cut(events_path, outcomes_path, out_path):
    out = pd.read_csv(outcomes_path, dtype={"lead_id": str}, keep_default_na=False)
    cut = {r.lead_id: (ts(r.converted_at) if r.converted_at else math.inf) for r in out.itertuples()}
    with open(out_path, "w") as f:
        for line in open(events_path):
            try:
                e = json.loads(line)
                keep = e["lead_id"] in cut and ts(e["ts"]) < cut[e["lead_id"]]
            except Exception:
                continue
            if keep:
                f.write(line)


def main():
    import sys
    if len(sys.argv) == 5 and sys.argv[1] == "--cut":
        return write_cut(*sys.argv[2:5])
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("outcomes")
    ap.add_argument("predictions")
    ap.add_argument("scores")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = pd.read_csv(a.outcomes, dtype={"lead_id": str}, keep_default_na=False)
    cut = {r.lead_id: (ts(r.converted_at) if r.converted_at else math.inf) for r in out.itertuples()}
    num, profile, times, end = aggregates(a.events, cut)
    df, numeric, cats = frame(out.lead_id, num, profile, times, end)
    y = out.converted.astype(int).values
    split = dict(zip(*pd.read_csv(a.predictions, dtype={"lead_id": str})[["lead_id", "split"]].T.values))
    hold = np.array([split[i] == "holdout" for i in out.lead_id])

    # Logistic regression: log1p counts, standardised, one-hot text, missing numbers as 0 + flag.
    lr_x = df[numeric].copy()
    for c in numeric:
        if c.startswith("p:"):
            lr_x[c + "_missing"] = lr_x[c].isna().astype(float)
            lr_x[c] = lr_x[c].fillna(lr_x[c].median())
        else:
            lr_x[c] = np.log1p(lr_x[c].clip(lower=0))
    lr_x = pd.concat([lr_x, pd.get_dummies(df[cats].fillna("∅"), dtype=float)], axis=1).values
    lr = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    lr.fit(lr_x[~hold], y[~hold])
    auc = {"lr": roc_auc_score(y[hold], lr.predict_proba(lr_x[hold])[:, 1])}

    # Trees: numbers as they are, text as categories.
    tree_x = df.copy()
    for c in cats:
        tree_x[c] = tree_x[c].astype("category")
    hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=a.seed)
    hgb.fit(tree_x[~hold], y[~hold])
    auc["hgb"] = roc_auc_score(y[hold], hgb.predict_proba(tree_x[hold])[:, 1])

    from interpret.glassbox import ExplainableBoostingClassifier
    ebm_x = df.copy()
    for c in cats:
        ebm_x[c] = ebm_x[c].fillna("∅")
    ebm = ExplainableBoostingClassifier(interactions=0, random_state=a.seed, n_jobs=2)
    ebm.fit(ebm_x[~hold], y[~hold])
    auc["ebm"] = roc_auc_score(y[hold], ebm.predict_proba(ebm_x[hold])[:, 1])

    # leadscore: the learned rules' score as replay prints it, on the same holdout.
    score = {}
    for line in open(a.scores):
        s = json.loads(line)
        score[s["lead_id"]] = s["score"]
    ls = np.array([score.get(i, -1e18) for i in out.lead_id])
    auc["leadscore"] = roc_auc_score(y[hold], ls[hold])
    order = ["leadscore", "lr", "hgb", "ebm"]
    print("auc " + " ".join(f"{k}={auc[k]:.4f}" for k in order))


if __name__ == "__main__":
    main()
