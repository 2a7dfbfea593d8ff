//! `gatehouse check`'s walk over everything sealed in the data file: every organization data
//! key opens under the master key, and every variable value, history version and deployment
//! result opens under its organization's key (current or, mid-rotation, previous). Nothing
//! opened is kept or shown; problems name rows, never values.

use std::collections::HashMap;

use crate::crypto::SecretKey;
use crate::domain::deployments::tables::EXECUTIONS;
use crate::domain::secrets::records::Sealed;
use crate::domain::secrets::sealing::{self, DataKey, Slot};
use crate::domain::secrets::tables::{ORG_DATA_KEYS, VARIABLES, VARIABLE_VERSIONS};
use crate::domain::Error;
use crate::store::{Reader, Record, RecordTable};

/// Rows read per scan, so a large table is walked in bounded memory.
const PAGE: usize = 5_000;

/// Problems listed in full; beyond this only counted.
const MAX_LISTED: usize = 50;

#[derive(Debug, Default)]
pub struct SealReport {
    pub data_keys: u64,
    pub values: u64,
    pub versions: u64,
    pub results: u64,
    /// Rows that do not open, by name (at most [`MAX_LISTED`]).
    pub problems: Vec<String>,
    /// Every row that does not open, listed or not.
    pub failures: u64,
}

impl SealReport {
    fn problem(&mut self, text: impl FnOnce() -> String) {
        self.failures += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text());
        }
    }
}

/// Opens everything sealed; `progress(done, total)` counts rows.
pub fn check_all(
    tx: &impl Reader,
    master: &SecretKey,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealReport, Error> {
    let mut report = SealReport::default();
    let total = tx.count(ORG_DATA_KEYS)?
        + tx.count(VARIABLES)?
        + tx.count(VARIABLE_VERSIONS)?
        + tx.count(EXECUTIONS)?;
    let mut done = 0u64;
    let mut step = || {
        done += 1;
        if done % 1000 == 0 || done == total {
            progress(done, total);
        }
    };
    let mut keys: HashMap<u64, DataKey> = HashMap::new();
    each(tx, ORG_DATA_KEYS, |org, rec| {
        report.data_keys += 1;
        let current = sealing::open_sealed_key(master, org, &rec.sealed);
        let previous =
            rec.previous.as_deref().map(|p| sealing::open_sealed_key(master, org, p)).transpose();
        match (current, previous) {
            (Ok(current), Ok(previous)) => {
                keys.insert(org, DataKey { current, previous });
            }
            _ => report.problem(|| {
                format!("the data key of organization {org} does not open with the master key")
            }),
        }
        step();
        Ok(())
    })?;
    // Variables by id, for their versions' slots (organization and environment).
    let mut homes: HashMap<u64, (u64, u64)> = HashMap::new();
    each(tx, VARIABLES, |id, var| {
        report.values += 1;
        homes.insert(id, (var.organization_id, var.environment_id));
        let slot = Slot {
            org: var.organization_id,
            env: var.environment_id,
            variable: id,
            version: var.version,
        };
        if !opens(keys.get(&var.organization_id), slot, &var.sealed) {
            report.problem(|| format!("variable {id} (version {}) does not open", var.version));
        }
        step();
        Ok(())
    })?;
    each(tx, VARIABLE_VERSIONS, |id, v| {
        report.versions += 1;
        match homes.get(&v.variable_id) {
            Some(&(org, env)) => {
                let slot = Slot { org, env, variable: v.variable_id, version: v.version };
                if !opens(keys.get(&org), slot, &v.sealed) {
                    report.problem(|| {
                        format!(
                            "history version {id} (variable {}, version {}) does not open",
                            v.variable_id, v.version
                        )
                    });
                }
            }
            None => report.problem(|| {
                format!("history version {id} belongs to no variable ({})", v.variable_id)
            }),
        }
        step();
        Ok(())
    })?;
    each(tx, EXECUTIONS, |id, e| {
        if e.result_sealed.is_some() {
            report.results += 1;
            let key = keys.get(&e.organization_id);
            if !key.is_some_and(|k| crate::domain::deployments::executions::result_opens(k, &e)) {
                report.problem(|| format!("the result of execution {id} does not open"));
            }
        }
        step();
        Ok(())
    })?;
    Ok(report)
}

fn opens(key: Option<&DataKey>, slot: Slot, sealed: &Sealed) -> bool {
    key.is_some_and(|k| sealing::open_value(k, slot, sealed).is_some())
}

/// Calls `f` with every record of `table`, a page at a time.
fn each<T: Record>(
    tx: &impl Reader,
    table: RecordTable<T>,
    mut f: impl FnMut(u64, T) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut from = 0u64;
    loop {
        let page = tx.scan(table, from..=u64::MAX, PAGE, false)?;
        let Some(&(last, _)) = page.last() else { return Ok(()) };
        for (id, rec) in page {
            f(id, rec)?;
        }
        match last.checked_add(1) {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
}
