//! Store choice for the durable state: redb vs fjall, batch writes with fsync and full read-back.
//! `cd benches/store-choice && cargo run --release` (a separate package, not built by CI).
use redb::ReadableTable;
use std::time::Instant;
fn val(i: u64, round: u64) -> Vec<u8> {
    let mut v = vec![(i ^ round) as u8; 180];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}
fn main() {
    let leads = 100_000u64;
    let batch = 10_000u64;
    let rounds = 30u64;
    let dir = std::env::temp_dir().join(format!("sb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // redb
    {
        let db = redb::Database::create(dir.join("r.redb")).unwrap();
        let t: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("leads");
        let t0 = Instant::now();
        for r in 0..rounds {
            let tx = db.begin_write().unwrap();
            {
                let mut tab = tx.open_table(t).unwrap();
                for j in 0..batch {
                    let i = (r * batch + j * 7) % leads;
                    tab.insert(format!("L-{i:08}").as_str(), val(i, r).as_slice())
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let w = t0.elapsed().as_secs_f64();
        drop(db);
        let t1 = Instant::now();
        let db = redb::Database::create(dir.join("r.redb")).unwrap();
        let tx = db.begin_read().unwrap();
        let tab = tx.open_table(t).unwrap();
        let mut n = 0;
        let mut bytes = 0;
        for e in tab.iter().unwrap() {
            let (k, v) = e.unwrap();
            n += 1;
            bytes += k.value().len() + v.value().len();
        }
        let rd = t1.elapsed().as_secs_f64();
        println!("redb : write {:.0} leads/s ({} commits of {batch}, fsync each), restore {n} leads ({bytes} B) at {:.0} leads/s, file {} MB",
            (rounds*batch) as f64 / w, rounds, n as f64 / rd, std::fs::metadata(dir.join("r.redb")).unwrap().len() / 1_000_000);
    }
    // fjall
    {
        let ks = fjall::Config::new(dir.join("f")).open().unwrap();
        let p = ks.open_partition("leads", Default::default()).unwrap();
        let t0 = Instant::now();
        for r in 0..rounds {
            let mut b = ks.batch();
            for j in 0..batch {
                let i = (r * batch + j * 7) % leads;
                b.insert(&p, format!("L-{i:08}"), val(i, r));
            }
            b.commit().unwrap();
            ks.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let w = t0.elapsed().as_secs_f64();
        drop(p);
        drop(ks);
        let t1 = Instant::now();
        let ks = fjall::Config::new(dir.join("f")).open().unwrap();
        let p = ks.open_partition("leads", Default::default()).unwrap();
        let mut n = 0;
        let mut bytes = 0;
        for e in p.iter() {
            let (k, v) = e.unwrap();
            n += 1;
            bytes += k.len() + v.len();
        }
        let rd = t1.elapsed().as_secs_f64();
        println!("fjall: write {:.0} leads/s ({} batches of {batch}, SyncAll each), restore {n} leads ({bytes} B) at {:.0} leads/s",
            (rounds*batch) as f64 / w, rounds, n as f64 / rd);
    }
    std::fs::remove_dir_all(&dir).ok();
}
