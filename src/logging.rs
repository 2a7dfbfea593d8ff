//! tracing to stderr, plain or JSON. Never a header value or a body.

use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("gatehouse={0},warn", config.server.log_level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if config.server.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed (a test started a second server in the same process): keep the first.
    drop(result);
}
