//! Tests of the security-review fixes (issue 11), one file per area.

mod auth;
mod hostile;
mod logs;
mod lows;
mod matrix;
mod scope;
