//! What a snapshot of a large data file costs: fills a fresh data file with request-log
//! records (about 1 KiB each, the request log being what grows) up to SIZE_MB, then times
//! `Store::snapshot` (the code behind `POST /api/admin/backup/`, `gatehouse backup` and the
//! scheduled snapshots) and `snapshot::inspect` of the result.
//!
//! Usage: `cargo run --release --example snapshot [SIZE_MB]` (default 1024). `bench/run
//! snapshot-1g` runs it.

use std::time::Instant;

use gatehouse::crypto::SecretKey;
use gatehouse::logs::tables::REQUEST_LOGS;
use gatehouse::logs::RequestLog;
use gatehouse::store::{encode, BulkWriter as _, Store, StoreError};

const BATCH: usize = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size_mb: u64 = std::env::args().nth(1).map_or(Ok(1024), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let master = SecretKey::generate()?;
    let path = dir.path().join("gatehouse.redb");
    let migrations = gatehouse::services::schema::MIGRATIONS;
    let (store, _) = Store::open(&path, &master, 256, 64, migrations)?;
    let filled = Instant::now();
    let mut rows = 0u64;
    while Store::file_size(&path) < size_mb * 1024 * 1024 {
        store.write_blocking(move |tx| {
            let first = tx.reserve_ids("request_log", BATCH as u64)?;
            tx.put_encoded(REQUEST_LOGS, BATCH, &mut |i, buf| {
                let id = first + i as u64;
                let rec = record(id);
                buf.extend_from_slice(&encode(&rec).unwrap_or_default());
                id
            })?;
            Ok::<_, StoreError>(())
        })?;
        rows += BATCH as u64;
    }
    let size = Store::file_size(&path);
    println!(
        "filled {:.0} MiB with {rows} request records in {:.1} s",
        size as f64 / 1048576.0,
        filled.elapsed().as_secs_f64()
    );
    let tables: Vec<_> = gatehouse::services::schema::all_tables().collect();
    let dest = dir.path().join("snapshot.redb");
    let report = store.snapshot(&dest, &tables, &master, &mut |_| {})?;
    println!(
        "snapshot: {:.0} MiB, {} rows in {:.1} s ({:.0} MiB/s of data file), written, fsynced, \
         reopened and checked",
        report.bytes as f64 / 1048576.0,
        report.rows,
        report.elapsed.as_secs_f64(),
        size as f64 / 1048576.0 / report.elapsed.as_secs_f64()
    );
    store.close();
    let checked = Instant::now();
    let found = gatehouse::store::snapshot::inspect(&dest, &tables, Some(&master))?;
    println!(
        "inspect (every record decoded): {} rows in {:.1} s",
        found.rows,
        checked.elapsed().as_secs_f64()
    );
    Ok(())
}

fn record(id: u64) -> RequestLog {
    RequestLog {
        id,
        request_id: format!("{id:032x}"),
        service_name: "gatehouse.Secrets".into(),
        method_name: "variables_list".into(),
        status: "success".into(),
        duration_ms: id % 97,
        created_at: 1_796_000_000 + i64::try_from(id / 100).unwrap_or(0),
        client_ip: "192.0.2.10".into(),
        user_id: Some(id % 50),
        username: format!("user-{}", id % 50),
        is_authenticated: true,
        http_method: "GET".into(),
        path: format!("/api/variables/?environment={}&page={}", id % 300, id % 7),
        http_status: Some(200),
        // A representative error or detail text: the records are about 1 KiB.
        error_message: "x".repeat(800),
        ..RequestLog::default()
    }
}
