"""The benchmark subset of leadscore's scoring (docs/SPEC.md section 4) in plain Python, for the
Quix Streams peer: per-rule exponentially decayed engagement, fit rules on the latest profile,
threshold with hysteresis. No daily caps, no duplicate detection, no bot filter
(benches/peers/README.md)."""

import datetime
import re
import tomllib

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MICROS = datetime.timedelta(microseconds=1)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def half_life_micros(text):
    """'7d' -> microseconds; 'never' -> None."""
    if text == "never":
        return None
    return int(text[:-1]) * UNITS[text[-1]] * 1_000_000


def parse_ts(text):
    """RFC 3339 -> integer microseconds since the epoch (exact)."""
    return (datetime.datetime.fromisoformat(text) - EPOCH) // MICROS


def url_path(url):
    """The path of a URL: after scheme://host, before ? or #."""
    colon = url.find(":")
    if colon >= 0 and url.startswith("//", colon + 1):
        after = url[colon + 3:]
        cuts = [i for i in (after.find("/"), after.find("?"), after.find("#")) if i >= 0]
        if not cuts or after[min(cuts)] != "/":
            return ""
        rest = after[min(cuts):]
    elif url.startswith("/"):
        rest = url
    else:
        return ""
    for sep in "?#":
        rest = rest.split(sep, 1)[0]
    return rest


def field_text(value):
    """A profile value as leadscore stores it: numbers without a trailing .0."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return value


class Rules:
    def __init__(self, path):
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        default_h = half_life_micros(doc.get("decay", {}).get("half_life", "never"))
        self.engagement = []
        for r in doc.get("engagement", []):
            h = half_life_micros(r["half_life"]) if "half_life" in r else default_h
            self.engagement.append((r["name"], r["on"], r, float(r["points"]), h))
        self.fit = []
        for r in doc.get("fit", []):
            self.fit.append((r["field"], self._condition(r), float(r["points"])))
        t = doc["threshold"]
        self.sales_ready = float(t["sales_ready"])
        self.rearm_below = float(t.get("rearm_below", t["sales_ready"]))
        self.min_fit = float(t.get("min_fit", float("-inf")))

    @staticmethod
    def _condition(r):
        if "matches" in r:
            rx = re.compile(r["matches"])
            return lambda v: rx.search(v) is not None
        if "equals" in r:
            want = field_text(r["equals"]).lower()
            return lambda v: v.lower() == want
        if "in" in r:
            want = {field_text(x).lower() for x in r["in"]}
            return lambda v: v.lower() in want
        lo, hi = r["range"]

        def in_range(v):
            try:
                n = float(v.strip())
            except ValueError:
                return False
            return lo <= n <= hi

        return in_range

    def matches(self, rule, ev, path):
        if "url_path_prefix" in rule and not (path or "").startswith(rule["url_path_prefix"]):
            return False
        for key in ("campaign_id", "form_id", "offer_stage"):
            if key in rule and ev.get(key) != rule[key]:
                return False
        if "min_duration_s" in rule:
            d = ev.get("duration_s")
            if d is None or d < rule["min_duration_s"]:
                return False
        return True

    def fit_score(self, profile):
        total = 0.0
        for field, holds, points in self.fit:
            value = profile.get(field)
            if value is not None and holds(value[0]):
                total += points
        return total


def new_state():
    return {"clock": None, "armed": True, "seq": 0, "fit": 0.0, "acc": {}, "profile": {}}


def score(rules, st, ev):
    """Applies one event to a lead's state; returns the sales_ready dict or None."""
    ts = parse_ts(ev["ts"])
    if st["clock"] is None:
        st["fit"] = rules.fit_score(st["profile"])
        clock = ts
    elif ts > st["clock"]:
        dt = ts - st["clock"]
        for name, _, _, _, h in rules.engagement:
            if name in st["acc"] and h is not None:
                st["acc"][name] *= 2.0 ** (-dt / h)
        clock = ts
    else:
        clock = st["clock"]
    st["clock"] = clock
    before = st["fit"] + sum(st["acc"].values())
    path = url_path(ev["url"]) if ev.get("url") else None
    for name, on, rule, points, h in rules.engagement:
        if on == ev["type"] and rules.matches(rule, ev, path):
            factor = 1.0 if h is None or clock == ts else 2.0 ** (-(clock - ts) / h)
            st["acc"][name] = st["acc"].get(name, 0.0) + points * factor
    fields = ev.get("fields")
    if ev["type"] == "form_conversion" and fields:
        changed = False
        for k, v in fields.items():
            old = st["profile"].get(k)
            if old is None or ts >= old[1]:
                text = field_text(v)
                changed |= old is None or old[0] != text
                st["profile"][k] = [text, ts]
        if changed:
            st["fit"] = rules.fit_score(st["profile"])
    after = st["fit"] + sum(st["acc"].values())
    if not st["armed"] and (before < rules.rearm_below or after < rules.rearm_below):
        st["armed"] = True
    if st["armed"] and after >= rules.sales_ready and st["fit"] >= rules.min_fit:
        st["armed"] = False
        st["seq"] += 1
        return {"lead_id": ev["lead_id"], "sequence": st["seq"], "qualified_at_us": clock,
                "score": after, "trigger_event_id": ev["event_id"]}
    return None
