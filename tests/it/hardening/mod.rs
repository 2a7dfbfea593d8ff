//! Tests of the security-review fixes (issue 11), one file per area.

mod hostile;
mod logs;
mod lows;
mod scope;
