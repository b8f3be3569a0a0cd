//! The JSON Schemas of docs/schemas/ and the Protobuf schema agree field for field, and the
//! example events of examples/events/ are valid events.

use std::collections::BTreeSet;
use std::path::Path;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Field names of a Protobuf message in proto/leadscore/v1/events.proto.
fn proto_fields(message: &str) -> BTreeSet<String> {
    let proto = repo("proto/leadscore/v1/events.proto");
    let start = proto.find(&format!("message {message} {{")).unwrap();
    let body = &proto[start..start + proto[start..].find("\n}").unwrap()];
    body.lines()
        .skip(1)
        .filter_map(|l| {
            let l = l.trim();
            let (decl, _) = l.split_once('=')?;
            decl.split_whitespace().last().map(str::to_string)
        })
        .collect()
}

fn schema_fields(file: &str) -> BTreeSet<String> {
    let schema: serde_json::Value = serde_json::from_str(&repo(file)).unwrap();
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_json_schemas_and_the_protobuf_messages_have_the_same_fields() {
    assert_eq!(
        schema_fields("docs/schemas/lead-event.schema.json"),
        proto_fields("LeadEvent")
    );
    assert_eq!(
        schema_fields("docs/schemas/sales-ready.schema.json"),
        proto_fields("SalesReady")
    );
    assert_eq!(
        schema_fields("docs/schemas/lead-outcome.schema.json"),
        proto_fields("LeadOutcome")
    );
    let schema: serde_json::Value =
        serde_json::from_str(&repo("docs/schemas/sales-ready.schema.json")).unwrap();
    let signal: BTreeSet<String> = schema["properties"]["top_signals"]["items"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(signal, proto_fields("Signal"));
}

#[test]
fn the_example_events_are_valid() {
    for name in ["page_view", "email_open", "click", "form_conversion"] {
        let text = repo(&format!("examples/events/{name}.json"));
        let ev = leadscore::event::decode_json(text.trim().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ev.kind.as_str(), name);
    }
    let text = repo("examples/events/lead_outcome.json");
    let v = leadscore::verdict::decode_json(text.trim().as_bytes(), &Default::default()).unwrap();
    assert_eq!(v.outcome, leadscore::verdict::SalesOutcome::Rejected);
}
