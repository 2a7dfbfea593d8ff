//! Tests of the hardening issue (security review findings), one file per engineer.

mod hostile;
mod lows;
