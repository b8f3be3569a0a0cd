//! Engine and replay throughput on 1M generated events over 100k leads.
//!
//! `cargo bench --bench engine` — criterion reports time per pass and events/s (Elements).

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leadscore::engine::Engine;
use leadscore::event::{decode_json, Event};
use leadscore::gen::{generate, write_ndjson, GenConfig};
use leadscore::leads::LeadTable;
use leadscore::replay::replay;

fn setup() -> (Engine, Vec<u8>) {
    let rules =
        leadscore::rules_file::load(Path::new("examples/rules.toml")).expect("examples/rules.toml");
    let g = generate(&GenConfig {
        leads: 105_000,
        seed: 1,
        ..GenConfig::default()
    });
    let mut ndjson = Vec::new();
    write_ndjson(&g.records[..g.records.len().min(1_000_000)], &mut ndjson).unwrap();
    (Engine::new(Arc::new(rules)), ndjson)
}

fn benches(c: &mut Criterion) {
    let (engine, ndjson) = setup();
    let events: Vec<Event<'static>> = ndjson
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| decode_json(l).unwrap().into_owned())
        .collect();
    let leads: std::collections::HashSet<&str> = events.iter().map(|e| &*e.lead_id).collect();
    eprintln!(
        "bench input: {} events over {} leads",
        events.len(),
        leads.len()
    );

    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    let run = |mut map: LeadTable| {
        let mut emitted = 0u64;
        for ev in &events {
            let st = map.get_or_insert(&ev.lead_id);
            if let leadscore::engine::Outcome::Scored(Some(_)) = engine.apply(st, ev) {
                emitted += 1;
            }
        }
        (map, emitted)
    };
    // Steady state of a long-running service: the table already has room for its leads.
    g.bench_function("apply_1M_events_100k_leads_presized", |b| {
        b.iter_with_large_drop(|| run(LeadTable::with_capacity(leads.len())))
    });
    g.bench_function("apply_1M_events_100k_leads", |b| {
        // The map is returned so that freeing 100k leads is not timed.
        b.iter_with_large_drop(|| run(LeadTable::default()))
    });
    // The same work through `apply_batch`: leads looked up and prefetched 16 events at a time.
    let run_batched = |mut map: LeadTable| {
        let mut emitted = 0u64;
        engine.apply_batch(&mut map, &events, |_, outcome| {
            if let leadscore::engine::Outcome::Scored(Some(_)) = outcome {
                emitted += 1;
            }
        });
        (map, emitted)
    };
    g.bench_function("apply_batch_1M_events_100k_leads_presized", |b| {
        b.iter_with_large_drop(|| run_batched(LeadTable::with_capacity(leads.len())))
    });
    g.bench_function("apply_batch_1M_events_100k_leads", |b| {
        b.iter_with_large_drop(|| run_batched(LeadTable::default()))
    });
    g.finish();

    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("ndjson_in_sales_ready_out_1M_events", |b| {
        b.iter_with_large_drop(|| {
            let mut out = Vec::with_capacity(1 << 20);
            replay(&engine, ndjson.as_slice(), &mut out, std::io::sink(), false).unwrap()
        })
    });
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
