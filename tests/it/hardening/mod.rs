//! Integration tests of the security review fixes (one file per area).

mod logs;
