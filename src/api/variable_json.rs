//! The variable list pages' JSON, written row by row from the stored bytes while the read
//! snapshot is open (see [`PageSink`]): the documented `Page<Variable>` object, byte for byte
//! what serde would write for it (a test holds the two equal), with no per-row allocation.

use poem::Request;

use crate::api::error::ApiError;
use crate::api::json_out::{push_opt_str, push_str};
use crate::api::paging::PageRequest;
use crate::clock::{rfc3339_digits, rfc3339_from_unix};
use crate::domain::secrets::variables::{PageSink, VariableRow};
use crate::domain::Error;

/// Roughly one object's JSON besides its key and value (ids, names, timestamps).
const ROW_BYTES: usize = 200;

/// Writes `{"count":…,"next":…,"previous":…,"results":[…]}`.
pub struct VariablePageJson<'r> {
    req: &'r Request,
    page: PageRequest,
    out: Vec<u8>,
    rows: usize,
    /// The last timestamp written and its text: rows written together share timestamps, and
    /// the calendar arithmetic is the larger part of writing one.
    last_ts: Option<(i64, [u8; 20])>,
}

impl<'r> VariablePageJson<'r> {
    pub fn new(req: &'r Request, page: PageRequest) -> Self {
        Self { req, page, out: Vec::new(), rows: 0, last_ts: None }
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"]}");
        self.out
    }

    fn push_ts(&mut self, secs: i64) {
        let digits = match self.last_ts {
            Some((s, d)) if s == secs => Some(d),
            _ => rfc3339_digits(secs).inspect(|d| self.last_ts = Some((secs, *d))),
        };
        match digits {
            Some(d) => {
                self.out.push(b'"');
                self.out.extend_from_slice(&d);
                self.out.push(b'"');
            }
            None => push_str(&mut self.out, &rfc3339_from_unix(secs)),
        }
    }
}

impl PageSink for VariablePageJson<'_> {
    fn total(&mut self, total: u64) -> Result<(), Error> {
        let (next, previous) = self.page.links(self.req, total).map_err(|e: ApiError| e.0)?;
        let on_page = total.saturating_sub(self.page.offset() as u64).min(self.page.limit() as u64);
        self.out.reserve(64 + usize::try_from(on_page).unwrap_or(0) * (ROW_BYTES + 64));
        self.out.extend_from_slice(b"{\"count\":");
        self.out.extend_from_slice(itoa::Buffer::new().format(total).as_bytes());
        self.out.extend_from_slice(b",\"next\":");
        push_opt_str(&mut self.out, next.as_deref());
        self.out.extend_from_slice(b",\"previous\":");
        push_opt_str(&mut self.out, previous.as_deref());
        self.out.extend_from_slice(b",\"results\":[");
        Ok(())
    }

    fn row(&mut self, row: &VariableRow<'_>) -> Result<(), Error> {
        let var = &row.variable;
        if self.rows > 0 {
            self.out.push(b',');
        }
        self.rows += 1;
        let out = &mut self.out;
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(itoa::Buffer::new().format(var.id).as_bytes());
        out.extend_from_slice(b",\"key\":");
        push_str(out, var.key);
        out.extend_from_slice(b",\"decrypted_value\":");
        push_str(out, row.value);
        out.extend_from_slice(b",\"environment\":");
        out.extend_from_slice(itoa::Buffer::new().format(var.environment_id).as_bytes());
        out.extend_from_slice(b",\"environment_name\":");
        push_str(out, row.environment_name);
        out.extend_from_slice(b",\"created_at\":");
        self.push_ts(var.created_at);
        self.out.extend_from_slice(b",\"updated_at\":");
        self.push_ts(var.updated_at);
        let out = &mut self.out;
        out.extend_from_slice(b",\"created_by_name\":");
        push_str(out, row.created_by_name);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(u64::from(var.version)).as_bytes());
        out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::variables::VariableOut;
    use crate::domain::secrets::records::{Sealed, Variable};

    fn variable(id: u64, key: &str, created_at: i64, updated_at: i64) -> Variable {
        Variable {
            id,
            organization_id: 1,
            project_id: 2,
            environment_id: 3,
            key: key.into(),
            sealed: Sealed(vec![1, 2, 3]),
            version: 4,
            created_by: 9,
            created_at,
            updated_by: 9,
            updated_at,
            deleted_at: None,
            deleted_by: None,
        }
    }

    /// The hand-written page equals serde's JSON of the documented `Page<Variable>`, for
    /// escaped keys, values and names, shared and distinct timestamps and years past 9999.
    #[test]
    fn the_page_is_the_documented_object_byte_for_byte() {
        let req = Request::builder()
            .uri(poem::http::Uri::from_static("/api/variables/?page=2&page_size=2"))
            .header("host", "gh.example")
            .finish();
        let page = PageRequest::new(Some(2), Some(2)).unwrap();
        let rows = [
            (
                variable(7, "QUOTE_\"AND\\", 1_700_000_000, 1_700_000_000),
                "line1\nline2 \u{1F600} \"q\"",
            ),
            (variable(8, "B", 1_700_000_000, 253_402_300_800), "\u{1}\t"),
        ];
        let mut sink = VariablePageJson::new(&req, page);
        sink.total(5).unwrap();
        for (var, value) in &rows {
            let row = VariableRow {
                variable: var.as_ref(),
                value,
                environment_name: "prod \"eu\"",
                created_by_name: "Ada Lovelace",
            };
            sink.row(&row).unwrap();
        }
        let fast = String::from_utf8(sink.finish()).unwrap();

        let results: Vec<VariableOut> = rows
            .iter()
            .map(|(var, value)| {
                VariableOut::from(crate::domain::secrets::variables::VariableView {
                    variable: var.clone(),
                    value: value.to_string(),
                    environment_name: "prod \"eu\"".into(),
                    created_by_name: "Ada Lovelace".into(),
                })
            })
            .collect();
        let (next, previous) = page.links(&req, 5).unwrap();
        assert!(next.is_some() && previous.is_some());
        let documented = format!(
            r#"{{"count":5,"next":{},"previous":{},"results":{}}}"#,
            serde_json::to_string(&next).unwrap(),
            serde_json::to_string(&previous).unwrap(),
            serde_json::to_string(&results).unwrap()
        );
        assert_eq!(fast, documented);

        // An empty page.
        let mut sink = VariablePageJson::new(&req, PageRequest::new(None, None).unwrap());
        sink.total(0).unwrap();
        assert_eq!(
            String::from_utf8(sink.finish()).unwrap(),
            r#"{"count":0,"next":null,"previous":null,"results":[]}"#
        );
    }
}
