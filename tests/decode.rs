//! Event decoding (SPEC §2): both encodings, and a precise reason for every kind of bad input.

use leadscore::event::{decode, decode_json, decode_protobuf, InvalidEvent, Limits, PayloadFormat};
use leadscore::gen::{generate, GenConfig};
use prost::Message;

#[test]
fn json_and_protobuf_decode_to_the_same_event() {
    let g = generate(&GenConfig {
        leads: 200,
        ..GenConfig::default()
    });
    let mut forms = 0;
    for r in &g.records {
        let ev = r.event.as_ref().unwrap();
        let json = ev.to_json();
        let from_json = decode_json(json.as_bytes()).unwrap();
        let pb = ev.to_proto().encode_to_vec();
        let from_pb = decode_protobuf(&pb).unwrap();
        assert_eq!(from_json, from_pb, "{json}");
        assert_eq!(&from_json, ev);
        // Auto-detection picks the right decoder for both.
        assert_eq!(
            decode(
                &pb,
                Some(ev.lead_id.as_bytes()),
                PayloadFormat::Auto,
                &Limits::default()
            )
            .unwrap(),
            from_pb
        );
        assert_eq!(
            decode(
                json.as_bytes(),
                None,
                PayloadFormat::Auto,
                &Limits::default()
            )
            .unwrap(),
            from_json
        );
        forms += !ev.fields.is_empty() as usize;
    }
    assert!(forms > 10, "the sample must include profile fields");
}

fn reason(payload: &str) -> String {
    decode(
        payload.as_bytes(),
        Some(b"L".as_slice()),
        PayloadFormat::Auto,
        &Limits::default(),
    )
    .unwrap_err()
    .to_string()
}

const OK: &str = r#""event_id":"e","type":"page_view","lead_id":"L","ts":"2026-11-28T10:00:00Z","url":"https://x.io/p""#;

#[test]
fn every_kind_of_bad_input_has_a_precise_reason() {
    let cases: Vec<(String, &str)> = vec![
        ("{\"event_id\":".to_string(), "invalid JSON"),
        ("[1,2]".to_string(), "payload must be one JSON object, got an array"),
        (format!("{{{}}}", OK.replace("\"event_id\":\"e\",", "")), "missing required field `event_id`"),
        (format!("{{{}}}", OK.replace("\"ts\":\"2026-11-28T10:00:00Z\",", "")), "missing required field `ts`"),
        (format!("{{{}}}", OK.replace("page_view", "pageview")), "unknown event type `pageview`"),
        (format!("{{{}}}", OK.replace("\"e\"", "42")), "field `event_id` must be a string, got a number"),
        (format!("{{{}}}", OK.replace("2026-11-28T10:00:00Z", "yesterday")), "field `ts` is not an RFC 3339 timestamp"),
        (format!("{{{}}}", OK.replace("2026-11-28T10:00:00Z", "2026-11-28T10:00:00")), "field `ts` is not an RFC 3339 timestamp"),
        (format!("{{{}}}", OK.replace(",\"url\":\"https://x.io/p\"", "")), "missing field `url`, required for page_view events"),
        (format!("{{{},\"duration_s\":-1}}", OK), "field `duration_s` must be a number ≥ 0"),
        (format!("{{{},\"duration_s\":\"long\"}}", OK), "field `duration_s` must be a number, got a string"),
        (format!("{{{},\"fields\":{{\"a\":true}}}}", OK), "field `fields.a` must be a string or a number, got a boolean"),
        (format!("{{{},\"fields\":[1]}}", OK), "field `fields` must be an object"),
        (format!("{{{},\"offer_stage\":\"late\"}}", OK), "field `offer_stage` must be tofu, mofu or bofu"),
        (format!("{{{},\"sent_at\":\"soon\"}}", OK), "field `sent_at` is not an RFC 3339 timestamp"),
        (format!("{{{}}}", OK.replace("\"event_id\":\"e\"", "\"event_id\":\"\"")), "field `event_id` must be 1–128 characters, got 0"),
        (format!("{{{}}}", OK.replace("\"event_id\":\"e\"", &format!("\"event_id\":\"{}\"", "é".repeat(129)))), "field `event_id` must be 1–128 characters, got 129"),
        (format!("{{{}}}", OK.replace("\"lead_id\":\"L\"", "\"lead_id\":\"M\"")), "message key `L` does not match lead_id `M`"),
        (r#"{"event_id":"e","type":"form_conversion","lead_id":"L","ts":"2026-11-28T10:00:00Z"}"#.to_string(), "missing field `form_id`, required for form_conversion events"),
    ];
    for (payload, want) in cases {
        let got = reason(&payload);
        assert!(
            got.contains(want),
            "payload {payload}\n  got:  {got}\n  want: {want}"
        );
    }
    // 128 multi-byte characters are fine.
    let ok = format!(
        "{{{}}}",
        OK.replace(
            "\"event_id\":\"e\"",
            &format!("\"event_id\":\"{}\"", "é".repeat(128))
        )
    );
    assert!(decode(
        ok.as_bytes(),
        Some(b"L"),
        PayloadFormat::Auto,
        &Limits::default()
    )
    .is_ok());
    // Unknown extra fields are ignored.
    assert!(decode_json(format!("{{{OK},\"extra\":{{\"x\":[1]}}}}").as_bytes()).is_ok());
}

#[test]
fn bad_protobuf_and_bad_keys() {
    let e = decode(
        &[0x0a, 0xff, 0x01],
        None,
        PayloadFormat::Auto,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "bad_protobuf");
    let e = decode(
        format!("{{{OK}}}").as_bytes(),
        Some(&[0xff, 0xfe]),
        PayloadFormat::Json,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e, InvalidEvent::KeyNotUtf8);
    let e = decode(b"{}", None, PayloadFormat::Protobuf, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "bad_protobuf");
}

fn page_view(url_len: usize, ts: &str) -> String {
    serde_json::json!({"event_id": "e1", "type": "page_view", "lead_id": "L", "ts": ts,
        "url": format!("https://x.io/{}", "a".repeat(url_len))})
    .to_string()
}

#[test]
fn limits_refuse_long_strings_many_fields_and_implausible_times() {
    let limits = Limits {
        max_string_chars: 100,
        max_profile_fields: 2,
        ..Limits::default()
    };
    let ok = page_view(50, "2026-11-01T00:00:00Z");
    assert!(decode(ok.as_bytes(), None, PayloadFormat::Json, &limits).is_ok());
    let long = page_view(200, "2026-11-01T00:00:00Z");
    let e = decode(long.as_bytes(), None, PayloadFormat::Json, &limits).unwrap_err();
    assert_eq!(e.code(), "over_limit");
    assert_eq!(
        e.to_string(),
        "field `url` in characters is 213, over max_string_chars 100"
    );
    let form = serde_json::json!({"event_id": "f", "type": "form_conversion", "lead_id": "L",
        "ts": "2026-11-01T00:00:00Z", "form_id": "x", "fields": {"a": 1, "b": 2, "c": 3}})
    .to_string();
    let e = decode(form.as_bytes(), None, PayloadFormat::Json, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the number of profile fields is 3, over max_profile_fields 2"
    );
    for ts in [
        "9999-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ] {
        let e = decode(
            page_view(1, ts).as_bytes(),
            None,
            PayloadFormat::Json,
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.code(), "bad_value", "{ts}: {e}");
        assert!(e
            .to_string()
            .contains("must be from 2000-01-01 to 2099-12-31"));
    }
}

#[test]
fn the_wall_clock_window_and_the_envelope() {
    use leadscore::event::{check_envelope, check_time};
    const H: i64 = 3_600_000_000;
    let now = 1_790_000_000_000_000;
    assert!(check_time(now + H, now, H, None).is_ok());
    let e = check_time(now + 3 * H, now, H, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `ts` is 3.0h ahead of the wall clock (max_clock_skew 1.0h)"
    );
    assert!(check_time(now - 1000 * H, now, H, None).is_ok());
    let e = check_time(now - 48 * H, now, H, Some(24 * H)).unwrap_err();
    assert_eq!(e.code(), "untimely");
    let limits = Limits {
        max_message_bytes: 100,
        max_headers: 2,
        ..Limits::default()
    };
    assert!(check_envelope(10, 80, [5, 5].into_iter(), &limits).is_ok());
    let e = check_envelope(10, 80, [5, 6].into_iter(), &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the message (key, payload and headers) in bytes is 101, over max_message_bytes 100"
    );
    let e = check_envelope(0, 0, [0, 0, 0].into_iter(), &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the number of headers is 3, over max_headers 2"
    );
}

#[test]
fn json_nested_100k_deep_is_refused_without_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = decode(
        deep.as_bytes(),
        None,
        PayloadFormat::Auto,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "bad_json");
    let deep_obj = format!(
        r#"{{"event_id":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(decode(
        deep_obj.as_bytes(),
        None,
        PayloadFormat::Auto,
        &Limits::default()
    )
    .is_err());
}
