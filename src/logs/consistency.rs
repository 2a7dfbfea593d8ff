//! `gatehouse check`'s comparison of the search index with the data file (server stopped):
//! the index may lag (the next start catches it up) or be missing or ahead (the next start
//! rebuilds it), but once it has caught up it must hold one document per record.

use std::path::Path;

use crate::domain::audit::tables::AUDIT;
use crate::logs::index::LogIndex;
use crate::logs::tables::REQUEST_LOGS;
use crate::store::{RangeReader as _, Reader as _, Store, StoreError};

#[derive(Debug)]
pub enum IndexCheck {
    /// One document per record.
    Consistent { requests: u64, audit: u64 },
    /// Caught up to an earlier point; the next start indexes the rest.
    Behind { requests: u64, audit: u64 },
    /// Missing, of another schema, or ahead of the data file: the next start rebuilds it.
    Rebuilt { reason: String },
    /// Caught up, yet its documents and the records differ in number.
    Inconsistent { detail: String },
}

pub fn check_index(store: &Store, data_dir: &Path) -> Result<IndexCheck, StoreError> {
    let dir = data_dir.join("index");
    let summary = match LogIndex::inspect(&dir) {
        Ok(s) => s,
        Err(reason) => return Ok(IndexCheck::Rebuilt { reason }),
    };
    let (last_req, last_audit, rows_req, rows_audit) = store.read(|tx| {
        Ok::<_, StoreError>((
            tx.last_key(REQUEST_LOGS)?.unwrap_or(0),
            tx.last_key(AUDIT)?.unwrap_or(0),
            tx.count(REQUEST_LOGS)?,
            tx.count(AUDIT)?,
        ))
    })?;
    let wm = summary.watermark;
    if wm.request_seq > last_req || wm.audit_seq > last_audit {
        return Ok(IndexCheck::Rebuilt { reason: "it is ahead of the data file".into() });
    }
    if wm.request_seq < last_req || wm.audit_seq < last_audit {
        return Ok(IndexCheck::Behind {
            requests: last_req - wm.request_seq,
            audit: last_audit - wm.audit_seq,
        });
    }
    if summary.requests != rows_req || summary.audit != rows_audit {
        return Ok(IndexCheck::Inconsistent {
            detail: format!(
                "{} request and {} audit documents for {rows_req} request and {rows_audit} \
                 audit records",
                summary.requests, summary.audit
            ),
        });
    }
    Ok(IndexCheck::Consistent { requests: rows_req, audit: rows_audit })
}
