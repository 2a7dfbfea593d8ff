//! Tests of the security-review fixes (issue 11), one file per area.

mod logs;
mod scope;
