#!/usr/bin/env python3
"""X Education (examples/data/x-education-leads.csv) as an event history.

Each row (one lead, id = Prospect ID) becomes:
- a form_conversion at the lead's creation carrying its profile columns as fields (snake_case
  names as `leadscore train --table` derives them; empty and "Select" cells left out; the
  leaking columns of the dataset README, the identifiers, the label and the behavioural
  columns below left out);
- TotalVisits visits spread over the 30 days after creation, each of round(Page Views Per
  Visit) page views (at least 1) whose duration_s share Total Time Spent on Website evenly;
- its Last Activity as one event an hour after the last visit: Email Opened → email_open,
  Email Link Clicked / View in browser link Clicked → click, Form Submitted on Website →
  form_conversion (form `website`), anything else → a page_view of /activity/<slug>.
Creation times are spread over 60 days from 2026-06-01 (seeded); a converter converts 1–10 days
after its last event. Lines are sorted by time (the application order).

Usage: xeducation_history.py CSV OUT_DIR [--seed S] [--holdout SHARE]
  → OUT_DIR/events.ndjson, OUT_DIR/outcomes.csv; with --holdout, a random SHARE of the leads
    (seeded) goes to OUT_DIR/test/{events.ndjson,outcomes.csv} and the rest to OUT_DIR/train/.
"""
import argparse
import csv
import datetime as dt
import json
import os
import random
import re

EXCLUDED = {"Prospect ID", "Lead Number", "Converted", "Tags", "Lead Quality", "Lead Profile",
            "Last Notable Activity", "TotalVisits", "Total Time Spent on Website",
            "Page Views Per Visit", "Last Activity"}
START = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
SITE = "https://www.xeducation.example"


def field_name(header):
    out = ""
    for c in header.strip():
        if c.isalnum():
            out += c.lower()
        elif not out.endswith("_"):
            out += "_"
    return out.strip("_")


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "none"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def number(s):
    try:
        return float(s)
    except ValueError:
        return 0.0


def lead_events(row, rng, lead):
    created = START + dt.timedelta(days=rng.random() * 60)
    seq = iter(range(1_000_000))
    ev = lambda kind, t, **kw: dict(event_id=f"{lead}-{next(seq)}", type=kind, lead_id=lead, ts=iso(t), **kw)
    fields = {field_name(k): v.strip() for k, v in row.items()
              if k and k not in EXCLUDED and not k.startswith("Asymmetrique")
              and v.strip() not in ("", "Select")}
    out = [ev("form_conversion", created, form_id=slug(row["Lead Origin"]), fields=fields)]
    visits = int(number(row["TotalVisits"]))
    pages = max(1, round(number(row["Page Views Per Visit"])))
    dwell = number(row["Total Time Spent on Website"]) / max(1, visits * pages)
    section = slug(row["Specialization"]) if row["Specialization"] not in ("", "Select") else "courses"
    last = created
    for t0 in sorted(created + dt.timedelta(days=rng.random() * 30) for _ in range(visits)):
        t = t0
        for j in range(pages):
            t += dt.timedelta(seconds=rng.uniform(20, 180))
            out.append(ev("page_view", t, url=f"{SITE}/{section}/page-{j + 1}", duration_s=round(dwell, 3)))
        last = max(last, t)
    activity = row["Last Activity"]
    at = last + dt.timedelta(hours=1)
    if activity == "Email Opened":
        out.append(ev("email_open", at, campaign_id="nurture", sent_at=iso(at - dt.timedelta(hours=2))))
    elif activity in ("Email Link Clicked", "View in browser link Clicked"):
        out.append(ev("click", at, url=f"{SITE}/{slug(activity)}", campaign_id="nurture"))
    elif activity == "Form Submitted on Website":
        out.append(ev("form_conversion", at, form_id="website"))
    elif activity:
        out.append(ev("page_view", at, url=f"{SITE}/activity/{slug(activity)}"))
    converted_at = at + dt.timedelta(days=rng.uniform(1, 10)) if row["Converted"] == "1" else None
    return out, converted_at


def write(dir_, lines, outcomes):
    os.makedirs(dir_, exist_ok=True)
    lines.sort(key=lambda e: e["ts"])
    with open(os.path.join(dir_, "events.ndjson"), "w") as f:
        for e in lines:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    with open(os.path.join(dir_, "outcomes.csv"), "w") as f:
        f.write("lead_id,converted,converted_at\n")
        for lead, at in outcomes:
            f.write(f"{lead},{int(at is not None)},{iso(at) if at else ''}\n")
    print(f"{dir_}: {len(lines)} events, {len(outcomes)} leads, "
          f"{sum(at is not None for _, at in outcomes)} converted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--holdout", type=float, default=0.0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    split = {"train": ([], []), "test": ([], [])}
    for row in csv.DictReader(open(a.csv, newline="", encoding="utf-8")):
        lead = row["Prospect ID"]
        events, converted_at = lead_events(row, rng, lead)
        part = split["test" if rng.random() < a.holdout else "train"]
        part[0].extend(events)
        part[1].append((lead, converted_at))
    if a.holdout > 0:
        for name, (lines, outcomes) in split.items():
            write(os.path.join(a.out_dir, name), lines, outcomes)
    else:
        write(a.out_dir, *split["train"])


if __name__ == "__main__":
    main()
