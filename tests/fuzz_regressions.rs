//! Every input a fuzz run found crashing, kept under fuzz/regressions/<target>/, passes its
//! target's property now; and each property holds on a seed corpus made from `gen`, so the
//! checks the fuzzers run are themselves exercised by `cargo test`.

use std::path::Path;
use std::sync::Arc;

use leadscore::engine::Engine;
use leadscore::fuzz_checks::{self, TARGETS};
use leadscore::gen::{generate, GenConfig};
use leadscore::leads::LeadTable;
use prost::Message;

#[test]
fn every_kept_crash_input_passes_its_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut checked = 0;
    for (name, check) in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            eprintln!("{name}: {}", path.display());
            check(&std::fs::read(&path).unwrap());
            checked += 1;
        }
    }
    eprintln!("{checked} kept crash inputs re-checked");
}

#[test]
fn the_properties_hold_on_generated_inputs() {
    let records = generate(&GenConfig {
        leads: 40,
        invalid_fraction: 0.05,
        ..GenConfig::default()
    })
    .records;
    let text =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules.toml")).unwrap();
    let rules = leadscore::rules::Rules::parse(Path::new("examples/rules.toml"), &text).unwrap();
    let engine = Engine::new(Arc::new(rules));
    let mut leads = LeadTable::default();
    let mut order = Vec::new();
    for r in &records {
        fuzz_checks::event_json(r.json_line().as_bytes());
        if let Some(ev) = &r.event {
            fuzz_checks::event_protobuf(&ev.to_proto().encode_to_vec());
            engine.apply_to(&mut leads, ev);
            order.extend([
                ev.kind.index() as u8,
                (ev.ts % 7) as u8,
                (ev.ts >> 20) as u8,
                3,
            ]);
        }
    }
    for lead in leads.iter() {
        fuzz_checks::state(&lead.state.to_bytes(engine.rules()));
    }
    for chunk in order.chunks(64) {
        fuzz_checks::engine_order(chunk);
    }
    fuzz_checks::rules(&text);
    fuzz_checks::config(b"brokers = \"k:9092\"\nmax_headers = 8\n[kafka]\n\"acks\" = \"all\"\n");
    fuzz_checks::config(b"max_headers = \"lots\"");
}
