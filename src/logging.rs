//! tracing to stderr, plain or JSON. Never a header value or a body.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(config: &Config) {
    // Already installed (a test started a second server in the same process): keep the first.
    // Colours only on a terminal: under systemd, journald would store the escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // `try_init` also forwards the `log` records of dependencies (rustls) into tracing.
    drop(subscriber(config, std::io::stderr, ansi).try_init());
}

/// The subscriber `init` installs, writing to `writer` (stderr in the binary, a buffer in tests).
pub fn subscriber<W>(
    config: &Config,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("gatehouse={0},warn", config.server.log_level)));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    if config.server.log_format == "json" {
        Box::new(builder.json().finish())
    } else {
        Box::new(builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: &str) -> String {
        let mut config = Config::default();
        config.server.log_format = format.into();
        config.server.log_level = "info".into();
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = subscriber(&config, move || buf.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(status = 200_u16, "request");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_format_writes_one_json_object_per_line() {
        let text = logged("json");
        let line = text.lines().next().expect("nothing logged");
        let v: serde_json::Value = serde_json::from_str(line).expect("not JSON");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "request");
        assert_eq!(v["fields"]["status"], 200);
    }

    #[test]
    fn plain_format_is_not_json() {
        let text = logged("plain");
        assert!(text.contains("request") && text.contains("status=200"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
