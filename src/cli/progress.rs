//! Progress of long CLI operations (backup, restore, check): a bar redrawn in place on a
//! terminal, a plain line every tenth otherwise (journald, CI logs, pipes).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often the bar is redrawn on a terminal.
const REDRAW: Duration = Duration::from_millis(100);
const WIDTH: u64 = 30;

pub struct Progress {
    label: &'static str,
    unit: Unit,
    tty: bool,
    last_draw: Option<Instant>,
    last_tenth: Option<u64>,
    drawn: bool,
}

/// What the counts are.
#[derive(Clone, Copy)]
pub enum Unit {
    Rows,
    Bytes,
}

impl Progress {
    pub fn new(label: &'static str, unit: Unit) -> Self {
        Self::with_terminal(label, unit, std::io::stderr().is_terminal())
    }

    pub fn with_terminal(label: &'static str, unit: Unit, tty: bool) -> Self {
        Self { label, unit, tty, last_draw: None, last_tenth: None, drawn: false }
    }

    /// Reports `done` of `total` (a `total` of 0 means unknown).
    pub fn update(&mut self, done: u64, total: u64) {
        if let Some(line) = self.line(done, total, Instant::now()) {
            let mut err = std::io::stderr().lock();
            let _ = if self.tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
            let _ = err.flush();
        }
    }

    /// Ends the bar's line on a terminal.
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }

    /// The text to print now, if any (a terminal redraws at most every [`REDRAW`]; a log gets a
    /// line when the tenth changes).
    fn line(&mut self, done: u64, total: u64, now: Instant) -> Option<String> {
        let fraction = (done.min(total) * 1000).checked_div(total);
        if self.tty {
            let finished = total > 0 && done >= total;
            if !finished && self.last_draw.is_some_and(|t| now.duration_since(t) < REDRAW) {
                return None;
            }
            self.last_draw = Some(now);
            self.drawn = true;
            let counts = self.counts(done, total);
            return Some(match fraction {
                Some(permille) => {
                    let filled = (permille * WIDTH / 1000) as usize;
                    let bar =
                        format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH as usize - filled));
                    format!("{} [{bar}] {:>3}% {counts}", self.label, permille / 10)
                }
                None => format!("{} {counts}", self.label),
            });
        }
        let tenth = fraction.map_or(done / (64 * 1024 * 1024), |p| p / 100);
        if self.last_tenth == Some(tenth) {
            return None;
        }
        self.last_tenth = Some(tenth);
        Some(match fraction {
            Some(permille) => {
                format!("{}: {}% ({})", self.label, permille / 10, self.counts(done, total))
            }
            None => format!("{}: {}", self.label, self.counts(done, total)),
        })
    }

    fn counts(&self, done: u64, total: u64) -> String {
        match (self.unit, total) {
            (Unit::Rows, 0) => format!("{done} rows"),
            (Unit::Rows, _) => format!("{done}/{total} rows"),
            (Unit::Bytes, 0) => human_bytes(done),
            (Unit::Bytes, _) => format!("{}/{}", human_bytes(done), human_bytes(total)),
        }
    }
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gets_one_line_per_tenth() {
        let mut p = Progress::with_terminal("backup", Unit::Rows, false);
        let t = Instant::now();
        let lines: Vec<String> = (0..=100).filter_map(|i| p.line(i * 10, 1000, t)).collect();
        assert_eq!(lines.len(), 11, "{lines:?}");
        assert_eq!(lines.first().map(String::as_str), Some("backup: 0% (0/1000 rows)"));
        assert_eq!(lines.last().map(String::as_str), Some("backup: 100% (1000/1000 rows)"));
    }

    #[test]
    fn a_terminal_redraws_at_most_every_tenth_of_a_second_but_always_at_the_end() {
        let mut p = Progress::with_terminal("check", Unit::Bytes, true);
        let t = Instant::now();
        assert!(p.line(0, 100, t).is_some());
        assert!(p.line(50, 100, t + Duration::from_millis(10)).is_none());
        let done = p.line(100, 100, t + Duration::from_millis(20)).unwrap_or_default();
        assert!(done.contains("[##############################] 100%"), "{done}");
        let later = p.line(60, 100, t + Duration::from_millis(200)).unwrap_or_default();
        assert!(later.contains(" 60% "), "{later}");
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
