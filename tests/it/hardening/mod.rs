//! The security review's findings, one file per area.

mod auth;
