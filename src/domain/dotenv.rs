//! `.env` parsing for import and writing for export.
//!
//! # Export format
//!
//! [`write_env`] writes `# ` header comments, a blank line, then one
//! `KEY=value` line per variable, sorted by key. [`encode_value`] picks, per
//! value, the first of these forms that fits:
//!
//! 1. empty → nothing after `=`;
//! 2. only `[A-Za-z0-9_./:@%+,=-]` → unquoted;
//! 3. no `'`, no `\\` (two backslashes), no CR and not ending in `\` →
//!    single quotes `'…'` (raw newlines, tabs, `$`, backticks, `"` inside);
//! 4. no `$`, no backtick, no CR and not ending in `\` → double quotes with
//!    `\` and `"` escaped (`\\`, `\"`) and newlines/tabs raw.
//!
//! These four forms are read back exactly by python-dotenv (1.2.2), dotenvy
//! (0.15.7), bash (`set -a; . file`) and [`parse`]. For everything else no
//! form exists that all of them read the same (found by running them; the
//! tests check every claim here):
//!
//! * **CR** (`\r`): python-dotenv opens the file in text mode, so a raw CR
//!   becomes LF; its `\r` escape is an error for dotenvy and two literal
//!   characters for bash.
//! * **value ending in `\`**: python-dotenv's quoted-value regex reads the
//!   closing `\\"` (or `\\'`) as an escaped quote and runs on to the next quote
//!   anywhere in the file, corrupting the following variables too. Unquoted,
//!   bash would treat the final `\` as a line continuation.
//! * **`'` or `\\` together with `$` or a backtick**: a `'` needs double quotes
//!   for python-dotenv (which, unlike bash and dotenvy, does not concatenate
//!   `'…'"'"'…'`). Inside double quotes dotenvy and bash need `\$` (they
//!   expand a bare `$`) but python-dotenv keeps `\$` as two characters; a
//!   backtick must be `` \` `` for bash (a bare one runs a command) but `` \` ``
//!   is an error for dotenvy. Without `'`, single quotes would do, except that
//!   python-dotenv turns `\\` into `\` even inside single quotes.
//!
//! For those values the encoding is one that bash, dotenvy and [`parse`] read
//! exactly and that python-dotenv *rejects* (it logs "could not parse statement
//! starting at line N" and leaves the key out) rather than silently reading a
//! different secret. The trick is shell-style adjacent quoted parts, which bash,
//! dotenvy and [`parse`] concatenate and python-dotenv refuses; every such
//! value ends with an empty `""` part. In order of preference:
//!
//! * no `'` and not ending in `\` → `'…'""`;
//! * no backtick → `"…"""` with `\`, `"` and `$` escaped;
//! * otherwise double-quoted parts for the text and single-quoted parts for
//!   runs of `$`/backtick (with any backslashes just before them), e.g.
//!   `"it's "'`'"x"'`'""`. python-dotenv stops after the first part and skips
//!   the rest of that physical line, so every line break of the value must be
//!   inside the first part, or it would resume parsing inside the value;
//! * when that is impossible too (the text up to the value's last line break
//!   holds both `'` and a backtick) → `"…"""` with `` \` `` escaped as well:
//!   bash and [`parse`] read it exactly, python-dotenv rejects it and dotenvy
//!   reports an error for that one line. This is the only class dotenvy
//!   cannot read.
//!
//! Also not representable: python-dotenv expands `${NAME}` and
//! `${NAME:-default}` in every value, quoted or not, with no escape; such values
//! are exact only with `dotenv_values(..., interpolate=False)`. A NUL byte
//! cannot be held by any environment variable (and `std::env::set_var`, which
//! dotenvy uses, panics on it), so [`write_env`] leaves such variables out with
//! a comment naming the key. The export never contains anything bash would
//! execute or expand: `$` and backticks only appear inside single quotes or
//! escaped inside double quotes.
//!
//! # Import format
//!
//! See [`parse`]: `KEY=VALUE`, `export KEY=VALUE`, comments, blank lines,
//! unquoted, single-quoted and double-quoted (multi-line, escaped) values,
//! adjacent quoted parts concatenated as in the shell; later duplicates win.

use std::borrow::Cow;
use std::collections::HashMap;

/// Longest variable name accepted, in bytes (names are ASCII).
pub const MAX_KEY_LEN: usize = 256;
/// Largest value accepted, in UTF-8 bytes.
pub const MAX_VALUE_BYTES: usize = 65536;

/// After this many errors the rest are summarised in one final error, so a
/// 10 MB file of garbage cannot make the import allocate hundreds of MB.
const MAX_LISTED_ERRORS: usize = 1000;

/// Appended to encodings python-dotenv cannot read exactly: bash, dotenvy and
/// [`parse`] read an empty double-quoted part as nothing, python-dotenv refuses
/// anything after a closing quote and skips the line.
const PYTHON_REJECT: &str = "\"\"";

/// `^[A-Za-z_][A-Za-z0-9_]*$` and at most [`MAX_KEY_LEN`] bytes.
#[must_use]
pub fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    key.len() <= MAX_KEY_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One imported variable; `line` is the 1-based line where its entry starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEntry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// A line that could not be imported. `error` is a human message that never
/// contains the value; `key` is the name as written when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub key: Option<String>,
    pub error: String,
}

/// Result of [`parse`]. `entries` holds one entry per key, in the order each
/// key first appeared, carrying the value and line number of its *last*
/// occurrence (like a Python dict being updated). `errors` is in file order;
/// past 1000 errors the remainder is summarised in one last error.
#[derive(Debug, Default)]
pub struct ParseOutcome {
    pub entries: Vec<ParsedEntry>,
    pub errors: Vec<LineError>,
}

/// Parses a `.env` file. Never fails as a whole: bad lines become
/// [`LineError`]s with 1-based line numbers and the rest is imported.
///
/// Rules:
/// * lines are split on `\n`; a UTF-8 BOM at the start is ignored;
/// * blank lines and lines whose first non-blank character is `#` are skipped;
/// * `[export ]KEY[ ]=[ ]VALUE`; KEY must satisfy [`is_valid_key`];
/// * unquoted VALUE: the rest of the line, trimmed; whitespace followed by `#`
///   starts a comment (so `K=a#b` is `a#b` and `K= #c` is empty);
/// * `'…'`: literal up to the next `'`, may span lines;
/// * `"…"`: may span lines; the escapes `\\`, `\"`, `\'`, `\$`, `` \` ``, `\n`, `\t`
///   and `\r` are decoded, any other backslash is kept as written;
/// * a value that starts with a quote may continue with further quoted parts
///   directly adjacent (`'a'"b"` is `ab`), as in the shell and dotenvy;
///   after the last closing quote only blanks or a `#` comment may follow;
/// * line breaks inside quotes are kept as written, except that in a file
///   whose every line ends in CRLF the CR of each CRLF inside a quoted value is
///   dropped (so a Windows-edited file gives LF values; a file [`write_env`]
///   wrote always has bare LF line ends and keeps CRs that are in values);
/// * an unterminated quote is one error at the line where it opened, covering
///   the rest of the file, which is not imported;
/// * errors: missing `=`, invalid or too long name, value over
///   [`MAX_VALUE_BYTES`], NUL byte in the value, text after a closing quote.
#[must_use]
pub fn parse(input: &str) -> ParseOutcome {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut parser = Parser {
        rest: input,
        line: 1,
        crlf: uses_crlf(input),
        outcome: ParseOutcome::default(),
        index: HashMap::new(),
        omitted_errors: 0,
        first_omitted_line: 0,
    };
    while !parser.rest.is_empty() {
        let before = parser.rest.len();
        parser.entry();
        // Every branch of `entry` consumes at least one line; this only
        // guards against a future edit turning a bug into a hang.
        if parser.rest.len() >= before {
            break;
        }
    }
    parser.finish()
}

/// True when the file has line breaks and every one of them is CRLF.
fn uses_crlf(input: &str) -> bool {
    let mut pieces = input.split('\n');
    let last = pieces.next_back();
    // `split` yields one piece more than there are `\n`; each piece but the
    // last was followed by a `\n`.
    last.is_some() && input.contains('\n') && pieces.all(|p| p.ends_with('\r'))
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
    crlf: bool,
    outcome: ParseOutcome,
    index: HashMap<String, usize>,
    omitted_errors: usize,
    first_omitted_line: usize,
}

/// Blank within a line: any whitespace except the line break itself.
fn is_inline_ws(c: char) -> bool {
    c != '\n' && c.is_whitespace()
}

/// Splits off the first physical line (without its `\n`).
fn first_line(s: &str) -> &str {
    match s.split_once('\n') {
        Some((line, _)) => line,
        None => s,
    }
}

/// Drops an `export` prefix unless `export` is itself the key (`export=1`).
fn strip_export(s: &str) -> &str {
    if let Some(after) = s.strip_prefix("export") {
        if after.starts_with([' ', '\t']) {
            let key_start = after.trim_start_matches([' ', '\t']);
            if !key_start.is_empty() && !key_start.starts_with('=') {
                return key_start;
            }
        }
    }
    s
}

/// Cuts an unquoted value at the first `#` that follows whitespace.
fn strip_inline_comment(text: &str) -> &str {
    let mut prev_ws = false;
    for (i, c) in text.char_indices() {
        if c == '#' && prev_ws {
            return text.get(..i).unwrap_or(text);
        }
        prev_ws = c.is_whitespace();
    }
    text
}

/// Which quote was left open.
#[derive(Clone, Copy)]
enum Quote {
    Single,
    Double,
}

/// Reads one or more adjacent quoted parts at the start of `s`. Returns the
/// decoded value and the number of bytes consumed, or the quote left open.
fn scan_quoted(s: &str, crlf: bool) -> Result<(String, usize), Quote> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    loop {
        let quote = match chars.peek() {
            Some(&(_, '\'')) => Quote::Single,
            Some(&(_, '"')) => Quote::Double,
            Some(&(i, _)) => return Ok((out, i)),
            None => return Ok((out, s.len())),
        };
        chars.next();
        match quote {
            Quote::Single => loop {
                match chars.next() {
                    None => return Err(Quote::Single),
                    Some((_, '\'')) => break,
                    Some((_, '\r')) if crlf && matches!(chars.peek(), Some(&(_, '\n'))) => {}
                    Some((_, c)) => out.push(c),
                }
            },
            Quote::Double => loop {
                match chars.next() {
                    None => return Err(Quote::Double),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        None => return Err(Quote::Double),
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, 'r')) => out.push('\r'),
                        Some((_, c @ ('\\' | '"' | '\'' | '$' | '`'))) => out.push(c),
                        // Unknown escapes stay as written, as in python-dotenv
                        // and bash.
                        Some((_, c)) => {
                            out.push('\\');
                            if !(c == '\r' && crlf && matches!(chars.peek(), Some(&(_, '\n')))) {
                                out.push(c);
                            }
                        }
                    },
                    Some((_, '\r')) if crlf && matches!(chars.peek(), Some(&(_, '\n'))) => {}
                    Some((_, c)) => out.push(c),
                }
            },
        }
    }
}

impl Parser<'_> {
    /// Consumes `len` bytes of `rest` plus the `\n` after them, if any.
    fn advance(&mut self, len: usize) {
        let consumed = self.rest.get(..len).unwrap_or(self.rest);
        let remaining = self.rest.get(len..).unwrap_or("");
        self.line += consumed.bytes().filter(|&b| b == b'\n').count();
        match remaining.strip_prefix('\n') {
            Some(after) => {
                self.rest = after;
                self.line += 1;
            }
            None => self.rest = remaining,
        }
    }

    fn error(&mut self, line: usize, key: Option<&str>, error: &str) {
        if self.outcome.errors.len() >= MAX_LISTED_ERRORS {
            if self.omitted_errors == 0 {
                self.first_omitted_line = line;
            }
            self.omitted_errors += 1;
            return;
        }
        // A name can be a whole garbage line; keep the report small.
        let key = key.map(|k| k.chars().take(MAX_KEY_LEN).collect());
        self.outcome.errors.push(LineError { line, key, error: error.to_string() });
    }

    /// Parses the entry (or blank/comment line) at the start of `rest`.
    fn entry(&mut self) {
        let start_line = self.line;
        let first = first_line(self.rest);
        let content = first.trim_start_matches(is_inline_ws);
        if content.trim_end_matches(is_inline_ws).is_empty() || content.starts_with('#') {
            self.advance(first.len());
            return;
        }
        let body = strip_export(content);
        let Some((key_part, after_eq)) = body.split_once('=') else {
            self.error(start_line, None, "missing '='");
            self.advance(first.len());
            return;
        };
        let key = key_part.trim_end_matches(is_inline_ws);
        // `after_eq` is a suffix of `first`, itself a prefix of `rest`, so the
        // value starts at this byte offset in `rest`.
        let after_eq_off = first.len() - after_eq.len();
        let from_eq = self.rest.get(after_eq_off..).unwrap_or("");
        let value_text = from_eq.trim_start_matches(is_inline_ws);
        let had_blank = value_text.len() < from_eq.len();
        let value_off = after_eq_off + (from_eq.len() - value_text.len());

        if value_text.starts_with(['\'', '"']) {
            self.quoted_entry(start_line, key, value_off, value_text);
        } else {
            let text = first_line(value_text);
            let value = if had_blank && text.starts_with('#') {
                ""
            } else {
                strip_inline_comment(text).trim()
            };
            let value = value.to_string();
            self.advance(first.len());
            self.accept(start_line, key, value);
        }
    }

    /// The rest of an entry whose value starts with a quote at byte
    /// `value_off` of `rest` (`value_text` is `rest` from there).
    fn quoted_entry(&mut self, start_line: usize, key: &str, value_off: usize, value_text: &str) {
        match scan_quoted(value_text, self.crlf) {
            Ok((value, consumed)) => {
                let tail = first_line(value_text.get(consumed..).unwrap_or(""));
                self.advance(value_off + consumed + tail.len());
                let tail = tail.trim_start_matches(is_inline_ws);
                if tail.is_empty() || tail.starts_with('#') {
                    self.accept(start_line, key, value);
                } else {
                    self.error(start_line, Some(key), "unexpected text after the closing quote");
                }
            }
            Err(quote) => {
                // Guessing where the value should have ended would import
                // wrong values; the rest of the file is one reported error.
                let last_line = self.line + self.rest.bytes().filter(|&b| b == b'\n').count()
                    - usize::from(self.rest.ends_with('\n'));
                let kind = match quote {
                    Quote::Single => "single",
                    Quote::Double => "double",
                };
                let span = if last_line > start_line {
                    format!("lines {start_line}-{last_line} were")
                } else {
                    format!("line {start_line} was")
                };
                let message = format!(
                    "unterminated {kind}-quoted value: no closing quote before the end of the \
                     file, so {span} not imported"
                );
                self.error(start_line, Some(key), &message);
                self.rest = "";
            }
        }
    }

    fn accept(&mut self, line: usize, key: &str, value: String) {
        if !is_valid_key(key) {
            let error = if key.is_empty() {
                Cow::Borrowed("missing variable name before '='")
            } else if key.len() > MAX_KEY_LEN {
                Cow::Owned(format!("variable name is longer than {MAX_KEY_LEN} characters"))
            } else {
                Cow::Borrowed("invalid variable name: it must match ^[A-Za-z_][A-Za-z0-9_]*$")
            };
            self.error(line, Some(key), &error);
            return;
        }
        if value.contains('\0') {
            self.error(line, Some(key), "value contains a NUL byte");
            return;
        }
        if value.len() > MAX_VALUE_BYTES {
            self.error(line, Some(key), &format!("value is longer than {MAX_VALUE_BYTES} bytes"));
            return;
        }
        if let Some(&i) = self.index.get(key) {
            if let Some(entry) = self.outcome.entries.get_mut(i) {
                entry.line = line;
                entry.value = value;
            }
            return;
        }
        self.index.insert(key.to_string(), self.outcome.entries.len());
        self.outcome.entries.push(ParsedEntry { line, key: key.to_string(), value });
    }

    fn finish(mut self) -> ParseOutcome {
        if self.omitted_errors > 0 {
            self.outcome.errors.push(LineError {
                line: self.first_omitted_line,
                key: None,
                error: format!(
                    "{} more lines from here on could not be imported (only the first \
                     {MAX_LISTED_ERRORS} errors are listed)",
                    self.omitted_errors
                ),
            });
        }
        self.outcome
    }
}

/// Characters every parser reads literally without quotes.
fn is_safe_unquoted(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=' | '-')
}

fn single_quoted(value: &str, out: &mut String) {
    out.push('\'');
    out.push_str(value);
    out.push('\'');
}

/// `"…"` with `\`, `"`, `$` and backtick escaped; line breaks and tabs raw
/// (bash reads `\n` as two characters, dotenvy rejects `\t` and `\r`).
fn double_quoted(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Adjacent parts for a value with a backtick that cannot be single-quoted:
/// runs of `$`/backtick (with any backslashes just before them) in single
/// quotes, everything else in double quotes.
/// `None` when python-dotenv's rejection would not end on the value's last
/// line: python-dotenv stops after the first part, so all line breaks must be
/// inside it.
fn concatenated(value: &str) -> Option<String> {
    let split = value.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let prefix = value.get(..split)?;
    let rest = value.get(split..)?;
    let mut out = String::new();
    if !prefix.is_empty() {
        if !prefix.contains('`') {
            double_quoted(prefix, &mut out);
        } else if !prefix.contains('\'') {
            // Ends with a line break, so never with a `\` that dotenvy or
            // python-dotenv would read as escaping the closing quote.
            single_quoted(prefix, &mut out);
        } else {
            return None;
        }
    }
    // Backslashes right before a `$`/backtick go into its single-quoted part
    // (never last there, so dotenvy's quote scan is fine): a double-quoted
    // part ending in `\\"` would let python-dotenv's regex run past its
    // closing quote to the next part, and if that began with `#` it would
    // accept a wrong value instead of rejecting the line.
    let mut single_flags: Vec<bool> = Vec::new();
    let mut next_single = false;
    for c in rest.chars().rev() {
        next_single = matches!(c, '$' | '`') || (c == '\\' && next_single);
        single_flags.push(next_single);
    }
    let mut run = String::new();
    let mut run_single = false;
    for (c, single) in rest.chars().zip(single_flags.into_iter().rev()) {
        if single != run_single && !run.is_empty() {
            if run_single {
                single_quoted(&run, &mut out);
            } else {
                double_quoted(&run, &mut out);
            }
            run.clear();
        }
        run_single = single;
        run.push(c);
    }
    if !run.is_empty() {
        if run_single {
            single_quoted(&run, &mut out);
        } else {
            double_quoted(&run, &mut out);
        }
    }
    Some(out)
}

/// The right-hand side of `KEY=` for `value`; see the module documentation
/// for the forms and which parsers read each exactly. A value containing NUL
/// cannot be represented ([`write_env`] leaves it out); this function still
/// returns the quoted form, which [`parse`] rejects.
#[must_use]
pub fn encode_value(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if value.chars().all(is_safe_unquoted) {
        return value.to_string();
    }
    let has_single_quote = value.contains('\'');
    let ends_with_backslash = value.ends_with('\\');
    let has_cr = value.contains('\r');
    let has_double_backslash = value.contains("\\\\");
    let has_dollar = value.contains('$');
    let has_backtick = value.contains('`');
    // dotenvy reads `\` in single quotes as escaping the next character when
    // it looks for the closing quote, so a final `\` would swallow it.
    let single_ok = !has_single_quote && !ends_with_backslash;

    let mut out = String::new();
    if single_ok && !has_double_backslash && !has_cr {
        single_quoted(value, &mut out);
        return out;
    }
    if !has_dollar && !has_backtick && !ends_with_backslash && !has_cr {
        double_quoted(value, &mut out);
        return out;
    }
    // No form all parsers read; see the module documentation.
    if single_ok {
        single_quoted(value, &mut out);
    } else if !has_backtick {
        double_quoted(value, &mut out);
    } else if let Some(parts) = concatenated(value) {
        out = parts;
    } else {
        double_quoted(value, &mut out);
    }
    out.push_str(PYTHON_REJECT);
    out
}

/// A header line as comment lines: line breaks start a new comment line and
/// other control characters become spaces, so no header text can turn into
/// an entry for any parser.
fn push_header(line: &str, out: &mut String) {
    for part in line.split(['\n', '\r']) {
        out.push_str("# ");
        out.extend(part.chars().map(|c| {
            if (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        }));
        out.push('\n');
    }
}

/// The exported file: `# ` + each header line, a blank line (only when there
/// is a header), then `KEY=encoded` lines sorted by key (stable, so duplicate
/// keys keep their order and parsers take the last), each ending in `\n`.
/// Nothing at all gives an empty string. A variable whose name is invalid or
/// whose value holds a NUL byte is replaced by a comment saying it was left
/// out (the store should never hold one; this keeps a bad row from breaking
/// the file).
#[must_use]
pub fn write_env(header_lines: &[String], vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for line in header_lines {
        push_header(line, &mut out);
    }
    if !header_lines.is_empty() {
        out.push('\n');
    }
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in sorted {
        if !is_valid_key(key) {
            out.push_str("# skipped a variable whose name is not a valid .env name\n");
        } else if value.contains('\0') {
            out.push_str("# ");
            out.push_str(key);
            out.push_str(
                " skipped: its value contains a NUL byte, which no environment variable can hold\n",
            );
        } else {
            out.push_str(key);
            out.push('=');
            out.push_str(&encode_value(value));
            out.push('\n');
        }
    }
    out
}

/// The literal part of [`tricky_values`].
const TRICKY_FIXED: &[&str] = &[
    "plain",
    // The marker a value that fails to open reads as: a real value may hold the same text.
    "[DECRYPTION_ERROR]",
    "with spaces",
    "  leading and trailing  ",
    "   ",
    "\t",
    "#starts-with-hash",
    "value # not a comment",
    "a#b",
    "it's",
    "say \"hi\"",
    "both ' and \"",
    "'",
    "\"",
    "a=b=c",
    "=starts-with-equals",
    "$HOME",
    "${HOME}",
    "${UNDEFINED_VAR:-default}",
    "$(touch gatehouse-dotenv-pwned)",
    "`touch gatehouse-dotenv-pwned`",
    "price: $5, it's cheap",
    "it's `date`",
    "'$(touch gatehouse-dotenv-pwned)'",
    "C:\\Users\\me\\file.txt",
    "trailing backslash\\",
    "\\",
    "\\\\",
    "double \\\\ backslash",
    "double \\\\ and $dollar",
    "back\\slash before `tick`\\",
    "\\\"",
    "\\'",
    "a\\$b",
    "\\n is two characters",
    "line1\nline2",
    "\nstarts with newline",
    "ends with newline\n",
    "many\n\n\nblank\n\nlines\n\n",
    "crlf\r\nline",
    "lone\rcr",
    "ends with cr\r",
    "it's\r\n$x",
    "tab\there",
    "\tleading tab",
    "backslash before newline\\\nnext",
    "unicode: héllo wörld ✓ 日本語 🦀🔑",
    "nbsp\u{a0}zero\u{200b}width rtl\u{202e}x",
    "line sep\u{2028}para\u{2029}nel\u{85}",
    "control \u{1b}[31mred\u{1b}[0m bell\u{7} bs\u{8} ff\u{c} vt\u{b}",
    "~/tilde",
    "!bang !! !$",
    "*glob?[x]{a,b}",
    "semicolon; echo pwned",
    "export FOO=bar",
    "KEY=VALUE\nEVIL=1",
    "\"\nEVIL=2\n\"",
    "'\nEVIL=3\n'",
    "# comment-like\nX=1",
    "x\" # \"",
    "%PATH% 100%",
    "0",
    "-dash",
    "{\"user\": \"svc\", \"pass\": \"p@ss w'rd\", \"n\": [1, 2.5, true, null], \"esc\": \"a\\\\b\\n\"}",
    "https://user:p%40ss@host.example.com:8443/path/to?q=1&r=a+b&s=%20#frag",
    "postgres://app:s3cr%3Ft@db.internal:5432/app?sslmode=require",
    "p@$$w0rd!'\"`~^&*()[]{}|;:,.<>?/\\=+-_",
    "it's\n`x`\nend",
    "`first`\nsecond's",
];

/// The round-trip corpus: values that are hard to write in a `.env` file.
/// [`write_env`] followed by [`parse`] must return each exactly; the module's
/// tests also feed them to dotenvy, python-dotenv and bash, and integration
/// tests elsewhere reuse the list. None contains NUL.
#[must_use]
pub fn tricky_values() -> Vec<String> {
    let mut values: Vec<String> = TRICKY_FIXED.iter().map(ToString::to_string).collect();
    values.push(
        "-----BEGIN PRIVATE KEY-----\n\
         MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n\
         MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n\
         NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n\
         -----END PRIVATE KEY-----\n"
            .to_string(),
    );
    values.push("a".repeat(MAX_VALUE_BYTES));
    // A 64 KiB multi-line base64 blob, like a large certificate bundle.
    let mut blob = String::new();
    let mut base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        .chars()
        .cycle()
        .step_by(7);
    while blob.len() < MAX_VALUE_BYTES {
        match base64.next() {
            Some(c) if blob.len() % 65 != 64 => blob.push(c),
            _ => blob.push('\n'),
        }
    }
    values.push(blob);
    values.push("it's $x ".repeat(MAX_VALUE_BYTES / 8));
    values.push(String::new());
    values
}

#[cfg(test)]
#[path = "dotenv_tests.rs"]
mod tests;
