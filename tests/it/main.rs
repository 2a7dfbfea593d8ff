//! One integration binary: every test boots the real server (real TLS, real redb, temp data dir,
//! port 0) and talks HTTP to it like a client that trusts the generated CA.

// Test code: a failed unwrap, expect, panic or index is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// Tests may read their own knobs (benchmark sizes) from the environment.
#![allow(clippy::disallowed_methods)]

mod harness;

mod backup;
mod cfg_semantics;
mod cli;
mod console;
mod crash;
mod deployments;
mod disk_full;
mod fixture;
mod foundation;
mod foundation_more;
mod hardening;
mod identity;
mod logs;
mod metrics;
mod metrics_scrapers;
mod protos;
mod schema_conformance;
mod secrets;
mod storage;
