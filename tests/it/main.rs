//! One integration binary: every test boots the real server (real TLS, real redb, temp data dir,
//! port 0) and talks HTTP to it like a client that trusts the generated CA.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod harness;

mod cli;
mod fixture;
mod foundation;
mod foundation_more;
mod hardening;
mod identity;
mod logs;
mod secrets;
mod storage;
