//! Writes the seed corpora of the fuzz targets (fuzz/fuzz_targets) from `gen`:
//! `cargo run --example fuzz_seeds -- <corpus dir>` (scripts/fuzz.sh runs it).

use std::path::Path;
use std::sync::Arc;

use leadscore::engine::Engine;
use leadscore::gen::{generate, GenConfig};
use leadscore::leads::LeadTable;
use prost::Message;

fn write(dir: &Path, target: &str, name: impl std::fmt::Display, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus dir");
    std::fs::write(d.join(format!("seed-{name}")), bytes).expect("seed file");
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: fuzz_seeds <corpus dir>");
    let dir = Path::new(&dir);
    let records = generate(&GenConfig {
        leads: 60,
        invalid_fraction: 0.05,
        ..GenConfig::default()
    })
    .records;
    let rules_text = std::fs::read("examples/rules.toml").expect("run from the repository root");
    let rules = leadscore::rules::Rules::parse(Path::new("examples/rules.toml"), &rules_text)
        .expect("example rules");
    let engine = Engine::new(Arc::new(rules));
    let mut leads = LeadTable::default();
    let mut order = Vec::new();
    for (i, r) in records.iter().enumerate().take(400) {
        write(dir, "event_json", i, r.json_line().as_bytes());
        if let Some(ev) = &r.event {
            write(dir, "event_protobuf", i, &ev.to_proto().encode_to_vec());
            engine.apply_to(&mut leads, ev);
            let secs = ((ev.ts / 1_000_000) % (65_536 * 40) / 40) as u16;
            let [lo, hi] = secs.to_le_bytes();
            order.extend([ev.kind.index() as u8, (i % 4) as u8, lo, hi]);
        }
    }
    for (i, lead) in leads.iter().enumerate() {
        write(dir, "state", i, &lead.state.to_bytes(engine.rules()));
    }
    for (i, chunk) in order.chunks(64).enumerate() {
        write(dir, "engine_order", i, chunk);
    }
    write(dir, "rules", "example", &rules_text);
    let config = "brokers = \"127.0.0.1:9092\"\ngroup_id = \"leadscore\"\ninput_topics = [\"lead-events\"]\n\
                  output_topic = \"sales-ready\"\ndlq_topic = \"lead-events-dlq\"\nrules = \"rules.toml\"\n\
                  guarantee = \"exactly_once\"\nmax_clock_skew = \"1h\"\n[kafka]\n\"security.protocol\" = \"plaintext\"\n";
    write(dir, "config", "example", config.as_bytes());
    println!("seeded {} under {}", records.len().min(400), dir.display());
}
