package leadscore.peer;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.OffsetDateTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * The benchmark subset of leadscore's scoring (docs/SPEC.md section 4): per-rule exponentially
 * decayed engagement, fit rules on the latest profile, threshold with hysteresis. No daily caps,
 * no duplicate detection, no bot filter (benches/peers/README.md).
 */
final class Scoring {
    record Engagement(String name, String on, JsonNode criteria, double points, long halfLife) {}

    record Fit(String field, Predicate<String> holds, double points) {}

    final List<Engagement> engagement = new ArrayList<>();
    final List<Fit> fit = new ArrayList<>();
    final List<String> fitFields = new ArrayList<>();
    final double salesReady;
    final double rearmBelow;
    final double minFit;

    /** Rules from the JSON form of the rules file (`tomllib` → `json`). */
    Scoring(JsonNode doc) {
        long defaultHalfLife = halfLife(doc.path("decay").path("half_life").asText("never"));
        for (JsonNode r : doc.path("engagement")) {
            long h = r.has("half_life") ? halfLife(r.get("half_life").asText()) : defaultHalfLife;
            engagement.add(new Engagement(r.get("name").asText(), r.get("on").asText(), r,
                    r.get("points").asDouble(), h));
        }
        for (JsonNode r : doc.path("fit")) {
            String field = r.get("field").asText();
            fit.add(new Fit(field, condition(r), r.get("points").asDouble()));
            if (!fitFields.contains(field)) {
                fitFields.add(field);
            }
        }
        JsonNode t = doc.get("threshold");
        salesReady = t.get("sales_ready").asDouble();
        rearmBelow = t.path("rearm_below").asDouble(salesReady);
        minFit = t.has("min_fit") ? t.get("min_fit").asDouble() : Double.NEGATIVE_INFINITY;
    }

    /** "7d" → microseconds; "never" → 0 (no decay). */
    static long halfLife(String text) {
        if (text.equals("never")) {
            return 0;
        }
        long n = Long.parseLong(text.substring(0, text.length() - 1));
        long unit = switch (text.charAt(text.length() - 1)) {
            case 's' -> 1;
            case 'm' -> 60;
            case 'h' -> 3600;
            case 'd' -> 86400;
            default -> throw new IllegalArgumentException("half-life " + text);
        };
        return n * unit * 1_000_000L;
    }

    static String fieldText(JsonNode v) {
        if (v.isNumber()) {
            double d = v.asDouble();
            return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
        }
        return v.asText();
    }

    private static Predicate<String> condition(JsonNode r) {
        if (r.has("matches")) {
            Pattern p = Pattern.compile(r.get("matches").asText());
            return v -> p.matcher(v).find();
        }
        if (r.has("equals")) {
            String want = fieldText(r.get("equals")).toLowerCase();
            return v -> v.toLowerCase().equals(want);
        }
        if (r.has("in")) {
            List<String> want = new ArrayList<>();
            r.get("in").forEach(x -> want.add(fieldText(x).toLowerCase()));
            return v -> want.contains(v.toLowerCase());
        }
        double lo = r.get("range").get(0).asDouble();
        double hi = r.get("range").get(1).asDouble();
        return v -> {
            try {
                double n = Double.parseDouble(v.trim());
                return lo <= n && n <= hi;
            } catch (NumberFormatException e) {
                return false;
            }
        };
    }

    static long parseTs(String text) {
        return ChronoUnit.MICROS.between(java.time.Instant.EPOCH, OffsetDateTime.parse(text).toInstant());
    }

    static String urlPath(String url) {
        int colon = url.indexOf(':');
        String rest;
        if (colon >= 0 && url.startsWith("//", colon + 1)) {
            String after = url.substring(colon + 3);
            int cut = -1;
            for (int i = 0; i < after.length(); i++) {
                char c = after.charAt(i);
                if (c == '/' || c == '?' || c == '#') {
                    cut = i;
                    break;
                }
            }
            if (cut < 0 || after.charAt(cut) != '/') {
                return "";
            }
            rest = after.substring(cut);
        } else if (url.startsWith("/")) {
            rest = url;
        } else {
            return "";
        }
        int end = rest.length();
        int q = rest.indexOf('?');
        int h = rest.indexOf('#');
        if (q >= 0) {
            end = Math.min(end, q);
        }
        if (h >= 0) {
            end = Math.min(end, h);
        }
        return rest.substring(0, end);
    }

    boolean matches(JsonNode rule, JsonNode ev, String path) {
        if (rule.has("url_path_prefix")
                && (path == null || !path.startsWith(rule.get("url_path_prefix").asText()))) {
            return false;
        }
        for (String key : new String[] {"campaign_id", "form_id", "offer_stage"}) {
            if (rule.has(key) && !rule.get(key).asText().equals(ev.path(key).asText(null))) {
                return false;
            }
        }
        if (rule.has("min_duration_s")) {
            JsonNode d = ev.get("duration_s");
            return d != null && !d.isNull() && d.asDouble() >= rule.get("min_duration_s").asDouble();
        }
        return true;
    }

    double fitScore(LeadState st) {
        double total = 0;
        for (Fit f : fit) {
            String v = st.profileValue(f.field());
            if (v != null && f.holds().test(v)) {
                total += f.points();
            }
        }
        return total;
    }

    private static double decay(long dt, long halfLife) {
        return halfLife == 0 || dt == 0 ? 1.0 : Math.pow(2.0, -(double) dt / (double) halfLife);
    }

    /** Applies one event; returns the sales_ready JSON or null. */
    String score(LeadState st, JsonNode ev) {
        long ts = parseTs(ev.get("ts").asText());
        long clock;
        if (st.clock == Long.MIN_VALUE) {
            st.fit = fitScore(st);
            clock = ts;
        } else if (ts > st.clock) {
            long dt = ts - st.clock;
            for (int i = 0; i < st.acc.length; i++) {
                st.acc[i] *= decay(dt, engagement.get(i).halfLife());
            }
            clock = ts;
        } else {
            clock = st.clock;
        }
        st.clock = clock;
        double before = st.fit + st.engagement();
        String type = ev.get("type").asText();
        String path = ev.hasNonNull("url") ? urlPath(ev.get("url").asText()) : null;
        for (int i = 0; i < engagement.size(); i++) {
            Engagement r = engagement.get(i);
            if (r.on().equals(type) && matches(r.criteria(), ev, path)) {
                st.acc[i] += r.points() * decay(clock - ts, r.halfLife());
            }
        }
        JsonNode fields = ev.get("fields");
        if (type.equals("form_conversion") && fields != null && fields.size() > 0) {
            boolean changed = false;
            for (String field : fitFields) {
                if (fields.has(field)) {
                    changed |= st.setProfile(field, fieldText(fields.get(field)), ts);
                }
            }
            if (changed) {
                st.fit = fitScore(st);
            }
        }
        double after = st.fit + st.engagement();
        if (!st.armed && (before < rearmBelow || after < rearmBelow)) {
            st.armed = true;
        }
        if (st.armed && after >= salesReady && st.fit >= minFit) {
            st.armed = false;
            st.sequence += 1;
            return "{\"lead_id\":\"" + ev.get("lead_id").asText() + "\",\"sequence\":" + st.sequence
                    + ",\"qualified_at_us\":" + clock + ",\"score\":" + after
                    + ",\"trigger_event_id\":\"" + ev.get("event_id").asText() + "\"}";
        }
        return null;
    }

    /** One lead's state, stored as compact bytes in the RocksDB store. */
    static final class LeadState {
        long clock = Long.MIN_VALUE;
        boolean armed = true;
        int sequence;
        double fit;
        double[] acc;
        final List<String[]> profile = new ArrayList<>();
        final List<Long> profileTs = new ArrayList<>();

        LeadState(int rules) {
            acc = new double[rules];
        }

        double engagement() {
            double s = 0;
            for (double a : acc) {
                s += a;
            }
            return s;
        }

        String profileValue(String field) {
            for (String[] p : profile) {
                if (p[0].equals(field)) {
                    return p[1];
                }
            }
            return null;
        }

        /** Latest timestamp wins (equal: the later event); returns whether the value changed. */
        boolean setProfile(String field, String value, long ts) {
            for (int i = 0; i < profile.size(); i++) {
                if (profile.get(i)[0].equals(field)) {
                    if (ts < profileTs.get(i)) {
                        return false;
                    }
                    boolean changed = !profile.get(i)[1].equals(value);
                    profile.get(i)[1] = value;
                    profileTs.set(i, ts);
                    return changed;
                }
            }
            profile.add(new String[] {field, value});
            profileTs.add(ts);
            return true;
        }

        byte[] encode() {
            int size = 8 + 1 + 4 + 8 + 4 + acc.length * 8 + 4;
            List<byte[][]> strings = new ArrayList<>();
            for (String[] p : profile) {
                byte[][] b = {p[0].getBytes(StandardCharsets.UTF_8), p[1].getBytes(StandardCharsets.UTF_8)};
                strings.add(b);
                size += 8 + b[0].length + b[1].length + 8;
            }
            ByteBuffer buf = ByteBuffer.allocate(size);
            buf.putLong(clock).put((byte) (armed ? 1 : 0)).putInt(sequence).putDouble(fit);
            buf.putInt(acc.length);
            for (double a : acc) {
                buf.putDouble(a);
            }
            buf.putInt(profile.size());
            for (int i = 0; i < strings.size(); i++) {
                byte[][] b = strings.get(i);
                buf.putInt(b[0].length).put(b[0]).putInt(b[1].length).put(b[1]).putLong(profileTs.get(i));
            }
            return buf.array();
        }

        static LeadState decode(byte[] bytes, int rules) {
            ByteBuffer buf = ByteBuffer.wrap(bytes);
            LeadState st = new LeadState(rules);
            st.clock = buf.getLong();
            st.armed = buf.get() == 1;
            st.sequence = buf.getInt();
            st.fit = buf.getDouble();
            int n = buf.getInt();
            for (int i = 0; i < n; i++) {
                st.acc[i] = buf.getDouble();
            }
            int m = buf.getInt();
            for (int i = 0; i < m; i++) {
                byte[] f = new byte[buf.getInt()];
                buf.get(f);
                byte[] v = new byte[buf.getInt()];
                buf.get(v);
                st.profile.add(new String[] {new String(f, StandardCharsets.UTF_8), new String(v, StandardCharsets.UTF_8)});
                st.profileTs.add(buf.getLong());
            }
            return st;
        }
    }
}
