//! The sandboxed template engine of API deployments.
//!
//! Workflows are user-written MiniJinja templates. They are compiled when saved (so that a
//! syntax error is refused at once, with a line and column) and rendered later, once per record,
//! with a context of exactly three names: `input`, `parameters` and `env`.
//!
//! Everything here assumes the template author is not trusted:
//!
//! * no loader is configured and the environment holds only the workflow itself, so `include`,
//!   `import`, `from` and `extends` fail at render with a clear error: a template can reach no
//!   file and no other template (MiniJinja 2.24 does not build with `fuel` but without
//!   `multi_template`, so these statements cannot be made syntax errors);
//! * fuel bounds the number of VM instructions, so a long loop ends as [`RenderError::OutOfFuel`];
//! * the output is bounded twice: every value printed with `{{ }}` is measured by a formatter
//!   (this also covers text captured by `{% set %}…{% endset %}` and `{% filter %}` blocks), and
//!   the final output goes through a writer that refuses past [`Limits::max_output_bytes`];
//! * filters whose numeric argument sizes an allocation (`indent`, `tojson(indent=…)`) are
//!   replaced by versions that refuse absurd widths;
//! * literal text is cut into small chunks before compiling, so that text captured in memory
//!   is bounded by fuel (see [`chunk_literal_text`]);
//! * error messages are built from the error's kind, detail and line only (never from MiniJinja's
//!   debug rendering, which quotes source lines) and every secret value is scrubbed from them.
//!
//! Known gap: string operators (`*`, `~`, `+`) are charged one unit of fuel whatever the size
//! of their result, and MiniJinja has no hook on them: a repetition may build up to 100 MB
//! (MiniJinja's own cap) and `~` can double a value each step. Output stays bounded, but CPU
//! time and peak memory of such a render are not; see the ignored test
//! `known_gap_string_operators_are_not_metered`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;

use minijinja::value::{Kwargs, Rest, StringInput, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

/// The largest template source accepted: templates are stored and compiled per workflow, and a
/// bigger source is more likely an accident (or an attack on the compiler) than a workflow.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;

/// The name under which the one template lives in its private environment.
const TEMPLATE_NAME: &str = "workflow";

/// What every `include`/`import`/`extends` name resolves to: no template is ever stored under
/// it (names with a NUL byte are never added), so the lookup always fails.
const NO_SUCH_TEMPLATE: &str = "\0";

/// The largest width accepted by `indent` and `tojson(indent=…)`: both build the indentation
/// string up front, so an unchecked width is an allocation of the author's choosing.
const MAX_INDENT_WIDTH: usize = 256;

/// The largest printf width or precision accepted by `format`.
const MAX_FORMAT_WIDTH: usize = 1024;

/// The largest count accepted by `slice` and `batch` (the same bound as MiniJinja's `range`).
const MAX_COUNT: usize = 100_000;

/// The print budget of one render, as a multiple of [`Limits::max_output_bytes`].
///
/// A macro's output is printed (and counted) once inside the macro and once more where the
/// macro is called, so counting printed values against the output limit itself would refuse
/// legitimate templates built from nested macros. The writer enforces the exact output limit;
/// this budget only bounds what captures (`{% set %}…{% endset %}`, `{% filter %}`, macro
/// bodies) can pile up in memory.
const PRINT_BUDGET_FACTOR: usize = 8;

/// The longest literal text run executed as one instruction; see [`chunk_literal_text`].
const MAX_LITERAL_CHUNK: usize = 64;

/// What replaces a secret value in error messages.
const SCRUBBED: &str = "***";

/// Where a template failed to compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column (in characters, not bytes) of the error.
    pub column: usize,
    /// What is wrong, without the source text.
    pub message: String,
}

/// Compiles `source` only to refuse it early: a workflow with a syntax error is never saved.
pub fn compile(source: &str) -> Result<(), SyntaxError> {
    Renderer::new(source, Limits::default()).map(|_| ())
}

/// Bounds on one render, so that one workflow cannot take a worker's CPU or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// MiniJinja fuel: roughly the number of VM instructions one render may execute.
    pub fuel: u64,
    /// The largest output (and the largest total of printed values) one render may produce.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    /// One million instructions end a runaway loop in tens of milliseconds, far above what a
    /// real mapping template needs; 1 MiB is far above a realistic API response.
    fn default() -> Self {
        Self { fuel: 1_000_000, max_output_bytes: 1024 * 1024 }
    }
}

/// How the rendered text becomes the deployment's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The text is the result, as a JSON string.
    Text,
    /// The text must parse as JSON, and the parsed value is the result.
    Json,
}

/// Why a render failed. Messages never contain secret values nor the template's source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The template itself failed (undefined name, bad operation, failing filter…).
    #[error("template error at line {line}: {message}")]
    Template {
        /// 1-based line where the error happened, 0 if MiniJinja did not say.
        line: usize,
        /// What went wrong, scrubbed of secrets.
        message: String,
    },
    /// The template executed more instructions than [`Limits::fuel`] allows.
    #[error("the template ran out of fuel (a loop too long?)")]
    OutOfFuel,
    /// The template produced more than [`Limits::max_output_bytes`].
    #[error("the output is larger than {limit} bytes")]
    OutputTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// `output_format = json` but the text does not parse.
    #[error("the output is not valid JSON: {0}")]
    NotJson(String),
}

/// A compiled template, reused for every record of an ETL run.
pub struct Renderer {
    /// A private environment holding only this template; `'static` because it owns the source.
    env: Environment<'static>,
    /// The limits this renderer was built with.
    limits: Limits,
}

impl fmt::Debug for Renderer {
    /// Shows the limits only: the source may be long and is the user's business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Renderer {
    /// Compiles `source` once, so that rendering each record only executes it.
    pub fn new(source: &str, limits: Limits) -> Result<Self, SyntaxError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(SyntaxError {
                line: 1,
                column: 1,
                message: format!("the template is larger than {MAX_SOURCE_BYTES} bytes"),
            });
        }
        let mut env = sandboxed_environment(limits);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|err| syntax_error(source, &err))?;
        // Compiled as written first, so syntax errors point into the author's source; then
        // replaced by the equivalent template with its literal text cut into small chunks.
        if let Some(chunked) = chunk_literal_text(source) {
            env.add_template_owned(TEMPLATE_NAME, chunked)
                .map_err(|err| syntax_error(source, &err))?;
        }
        Ok(Self { env, limits })
    }

    /// Renders one context; `secrets` are the env values, used ONLY to scrub error messages.
    pub fn render(
        &self,
        input: &serde_json::Value,
        parameters: &serde_json::Value,
        env: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        let template =
            self.env.get_template(TEMPLATE_NAME).map_err(|err| render_error(&err, "", env))?;
        let ctx = minijinja::context! {
            input => Value::from_serialize(input),
            parameters => Value::from_serialize(parameters),
            env => Value::from_serialize(env),
        };
        let _budget =
            BudgetGuard::set(self.limits.max_output_bytes.saturating_mul(PRINT_BUDGET_FACTOR));
        let mut out = CappedWriter::new(self.limits.max_output_bytes);
        let result = template.render_captured_to(ctx, &mut out);
        let too_large = out.overflowed || BUDGET.with(|b| b.get().is_none());
        match result {
            Ok(_) if !too_large => String::from_utf8(out.buf).map_err(|_| RenderError::Template {
                line: 0,
                message: "the output is not valid UTF-8".to_owned(),
            }),
            Ok(_) => Err(RenderError::OutputTooLarge { limit: self.limits.max_output_bytes }),
            Err(_) if too_large => {
                Err(RenderError::OutputTooLarge { limit: self.limits.max_output_bytes })
            }
            Err(err) => Err(render_error(&err, template.source(), env)),
        }
    }
}

/// Text → the result value: Text → JSON string; Json → parsed value (NotJson on failure,
/// message names line and column of serde_json's error, never the content).
pub fn finish(format: OutputFormat, text: String) -> Result<serde_json::Value, RenderError> {
    match format {
        OutputFormat::Text => Ok(serde_json::Value::String(text)),
        OutputFormat::Json => serde_json::from_str(&text).map_err(|err| {
            // serde_json's messages name the category ("expected value", "trailing
            // characters"…) and never quote the input, but build it ourselves to be sure.
            let what = match err.classify() {
                serde_json::error::Category::Eof => "unexpected end of input",
                serde_json::error::Category::Syntax => syntax_category(&err),
                serde_json::error::Category::Data => "invalid data",
                serde_json::error::Category::Io => "read error",
            };
            RenderError::NotJson(format!("line {}, column {}: {what}", err.line(), err.column()))
        }),
    }
}

/// The fixed part of a serde_json syntax error ("expected value"), without its position suffix;
/// falls back to a generic phrase for a message shape we do not recognise.
fn syntax_category(err: &serde_json::Error) -> &'static str {
    const KNOWN: &[&str] = &[
        "expected value",
        "expected `,` or `]`",
        "expected `,` or `}`",
        "expected `:`",
        "expected ident",
        "key must be a string",
        "trailing characters",
        "trailing comma",
        "invalid number",
        "number out of range",
        "invalid escape",
        "invalid unicode code point",
        "control character (\\u0000-\\u001F) found while parsing a string",
        "EOF while parsing a string",
        "lone leading surrogate in hex escape",
        "recursion limit exceeded",
    ];
    let message = err.to_string();
    KNOWN.iter().find(|known| message.starts_with(**known)).copied().unwrap_or("invalid JSON")
}

/// Cuts every literal text run of `source` longer than [`MAX_LITERAL_CHUNK`] bytes into chunks,
/// returning the rewritten source, or `None` when nothing needs cutting.
///
/// Why: MiniJinja charges one unit of fuel per instruction, and a literal text run is *one*
/// instruction however long. Inside a capture (`{% set x %}…{% endset %}`, `{% filter %}`, a
/// macro body), which never reaches our capped writer, a 60 KB literal in a loop piles up
/// 60 KB per unit of fuel: about 15 GB at the default fuel. With chunks of at most
/// `MAX_LITERAL_CHUNK` bytes, captured literal text is bounded by `fuel × MAX_LITERAL_CHUNK`.
///
/// Chunks are separated by an empty comment `{##}` (or, inside `{% raw %}`, by
/// `{% endraw %}{% raw %}`), which renders as nothing and adds no line, so output and line
/// numbers are unchanged. MiniJinja's own tokenizer finds the literal runs, so strings,
/// comments and tags are never touched.
fn chunk_literal_text(source: &str) -> Option<String> {
    use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
    let ws = WhitespaceConfig { keep_trailing_newline: true, ..WhitespaceConfig::default() };
    let base = source.as_ptr() as usize;
    // (byte offset in source, separator) for every cut, in increasing order.
    let mut cuts: Vec<(usize, &str)> = Vec::new();
    for token in tokenize(source, false, Default::default(), ws) {
        let Ok((Token::TemplateData(data), _)) = token else {
            continue;
        };
        if data.len() <= MAX_LITERAL_CHUNK {
            continue;
        }
        // The token borrows the source: its address gives its offset.
        let start = (data.as_ptr() as usize).checked_sub(base)?;
        let before = source.get(..start)?;
        let separator = if ends_with_raw_tag(before) { "{% endraw %}{% raw %}" } else { "{##}" };
        let mut last = 0;
        for (i, _) in data.char_indices() {
            // Never cut right after `{`: `{` + `{##}` would read as `{{`.
            let after_brace = data.get(..i).is_some_and(|d| d.ends_with('{'));
            if i - last >= MAX_LITERAL_CHUNK && !after_brace {
                cuts.push((start + i, separator));
                last = i;
            }
        }
    }
    if cuts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(source.len() + cuts.len() * 24);
    let mut from = 0;
    for (at, separator) in cuts {
        out.push_str(source.get(from..at)?);
        out.push_str(separator);
        from = at;
    }
    out.push_str(source.get(from..)?);
    Some(out)
}

/// Whether `before` ends with a `{% raw %}` tag (any whitespace control), i.e. whether the
/// literal run that follows is the content of a raw block.
fn ends_with_raw_tag(before: &str) -> bool {
    // `{% raw -%}` trims the content's leading whitespace, so the run starts after it.
    let Some(rest) = before.trim_end().strip_suffix("%}") else {
        return false;
    };
    let rest = rest.strip_suffix(['-', '+']).unwrap_or(rest).trim_end();
    let Some(rest) = rest.strip_suffix("raw") else {
        return false;
    };
    let rest = rest.trim_end();
    let rest = rest.strip_suffix(['-', '+']).unwrap_or(rest);
    rest.ends_with("{%")
}

/// Builds the environment every workflow runs in: builtins only, no loader, strict undefined,
/// fuel, no auto-escaping, bounded output.
fn sandboxed_environment(limits: Limits) -> Environment<'static> {
    let mut env = Environment::new();
    // Strict: a typo in `input.nmae` must fail loudly rather than render an empty string into
    // an API payload. `default(...)` and `is defined` still work on undefined values.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(limits.fuel));
    // The output is text or JSON, never HTML: escaping would corrupt it.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // What the author wrote is what the API returns, last newline included.
    env.set_keep_trailing_newline(true);
    // Debug info renders source lines into errors; we never show them, so don't collect them.
    env.set_debug(false);
    // `debug()` dumps the whole context (secrets included) into the output: not a feature a
    // workflow needs, and a foot-gun for anyone pasting output into a ticket.
    env.remove_global("debug");
    // The environment holds the workflow itself: map every include/import/extends name to one
    // that cannot exist, so a template cannot even include itself.
    env.set_path_join_callback(|_, _| NO_SUCH_TEMPLATE.into());
    env.add_filter("indent", bounded_indent);
    env.add_filter("tojson", bounded_tojson);
    env.add_filter("format", bounded_format);
    env.add_filter("slice", bounded_slice);
    env.add_filter("batch", bounded_batch);
    let max_value_bytes = limits.max_output_bytes;
    env.add_filter(
        "replace",
        move |state: &State, value: StringInput<'_>, from: StringInput<'_>, to: StringInput<'_>| {
            bounded_replace(state, value, from, to, max_value_bytes)
        },
    );
    env.set_formatter(budgeted_formatter);
    env
}

/// `indent` with a width cap, delegating to MiniJinja's own filter.
fn bounded_indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let kw_width: Option<usize> = kwargs.get("width")?;
    check_width(width.or(kw_width))?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// `tojson` with an indent cap, delegating to MiniJinja's own filter.
fn bounded_tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let kw_indent: Option<Value> = kwargs.get("indent")?;
    let width = indent
        .as_ref()
        .or(kw_indent.as_ref())
        .filter(|i| !matches!(i.kind(), minijinja::value::ValueKind::Bool))
        .and_then(Value::as_usize);
    check_width(width)?;
    minijinja::filters::tojson(value, indent, kwargs)
}

/// `format` (printf-style) with width and precision caps: MiniJinja pads with
/// `" ".repeat(width)`, so `"%999999999999s" | format(1)` aborts the process on allocation.
fn bounded_format(state: &State, format: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(text) = format.as_str() {
        check_printf_widths(text)?;
    }
    minijinja::filters::format(state, format, args)
}

/// Refuses any printf width or precision above [`MAX_FORMAT_WIDTH`].
///
/// Follows MiniJinja's grammar: `%` [`(key)`] flags* [width] [`.` precision] …
fn check_printf_widths(format: &str) -> Result<(), Error> {
    let bytes = format.as_bytes();
    let mut i = 0;
    while let Some(pos) = bytes.get(i..).and_then(|rest| rest.iter().position(|&b| b == b'%')) {
        i += pos + 1;
        if bytes.get(i) == Some(&b'(') {
            i += bytes
                .get(i..)
                .and_then(|rest| rest.iter().position(|&b| b == b')'))
                .map_or(bytes.len(), |p| p + 1);
        }
        while matches!(bytes.get(i), Some(b'#' | b'0' | b'-' | b' ' | b'+')) {
            i += 1;
        }
        for _ in 0..2 {
            let start = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let number = format.get(start..i).unwrap_or("");
            // More digits than usize holds is too wide as well.
            if !number.is_empty() && number.parse::<usize>().map_or(true, |n| n > MAX_FORMAT_WIDTH)
            {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "format widths and precisions above {MAX_FORMAT_WIDTH} are not allowed"
                    ),
                ));
            }
            if bytes.get(i) == Some(&b'.') {
                i += 1;
            } else {
                break;
            }
        }
    }
    Ok(())
}

/// `slice` with a count cap: MiniJinja pre-allocates `count` slices.
fn bounded_slice(
    state: &State,
    value: Value,
    count: usize,
    fill_with: Option<Value>,
) -> Result<Value, Error> {
    check_count(count)?;
    minijinja::filters::slice(state, value, count, fill_with)
}

/// `batch` with a count cap: MiniJinja pre-allocates (and may fill) `count` items per batch.
fn bounded_batch(
    state: &State,
    value: Value,
    count: usize,
    fill_with: Option<Value>,
) -> Result<Value, Error> {
    check_count(count)?;
    minijinja::filters::batch(state, value, count, fill_with)
}

/// Refuses a count above [`MAX_COUNT`].
fn check_count(count: usize) -> Result<(), Error> {
    if count > MAX_COUNT {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("counts above {MAX_COUNT} are not allowed"),
        ));
    }
    Ok(())
}

/// `replace` refusing results larger than `max_bytes`: replacing in a large string with a large
/// replacement multiplies sizes (`("x" * 100000) | replace("x", "x" * 100000)` is 10 GB).
fn bounded_replace(
    state: &State,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
    max_bytes: usize,
) -> Result<Value, Error> {
    let (text, needle) = (value.as_str(), from.as_str());
    let hits = if needle.is_empty() {
        text.chars().count().saturating_add(1)
    } else {
        text.matches(needle).count()
    };
    let size = text
        .len()
        .saturating_sub(hits.saturating_mul(needle.len()))
        .saturating_add(hits.saturating_mul(to.as_str().len()));
    if size > max_bytes {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("replace would produce more than {max_bytes} bytes"),
        ));
    }
    minijinja::filters::replace(state, value, from, to)
}

/// Refuses a width above [`MAX_INDENT_WIDTH`].
fn check_width(width: Option<usize>) -> Result<(), Error> {
    match width {
        Some(w) if w > MAX_INDENT_WIDTH => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("indentation wider than {MAX_INDENT_WIDTH} is not allowed"),
        )),
        _ => Ok(()),
    }
}

thread_local! {
    /// Bytes the current render may still print with `{{ }}`; `None` once exhausted.
    ///
    /// MiniJinja renders synchronously on the calling thread, so a thread-local is the budget of
    /// exactly one render. It is consulted by the formatter, which also runs for output captured
    /// into `{% set %}` / `{% filter %}` blocks, which never reach the writer.
    static BUDGET: Cell<Option<usize>> = const { Cell::new(Some(usize::MAX)) };
}

/// Sets the per-render print budget and restores the previous one when dropped, so that a
/// render that fails or panics leaves no budget behind for the next one on this thread.
struct BudgetGuard {
    /// The budget in force before this render.
    previous: Option<usize>,
}

impl BudgetGuard {
    /// Installs `limit` as this thread's budget.
    fn set(limit: usize) -> Self {
        Self { previous: BUDGET.with(|b| b.replace(Some(limit))) }
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(self.previous));
    }
}

/// Takes `n` bytes from the budget; an error (and an exhausted budget) if it does not cover them.
fn spend(n: usize) -> Result<(), Error> {
    BUDGET.with(|b| match b.get().and_then(|left| left.checked_sub(n)) {
        Some(left) => {
            b.set(Some(left));
            Ok(())
        }
        None => {
            b.set(None);
            Err(Error::new(ErrorKind::InvalidOperation, "output limit exceeded"))
        }
    })
}

/// Counts formatted bytes without storing them, stopping as soon as the budget is exceeded.
struct Meter {
    /// Bytes seen so far.
    bytes: usize,
    /// The most bytes to accept.
    limit: usize,
}

impl fmt::Write for Meter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes = self.bytes.saturating_add(s.len());
        if self.bytes > self.limit {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The formatter: measures each printed value against the budget before MiniJinja writes it.
fn budgeted_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let size = match value.as_str() {
        Some(s) => s.len(),
        None => {
            let limit = BUDGET.with(Cell::get).unwrap_or(0);
            let mut meter = Meter { bytes: 0, limit };
            // An error here only means "more than the budget": spend() below says so.
            let _ = write!(meter, "{value}");
            meter.bytes
        }
    };
    spend(size)?;
    minijinja::escape_formatter(out, state, value)
}

/// The render's sink: keeps the output in memory and refuses to grow past the limit.
struct CappedWriter {
    /// The output so far.
    buf: Vec<u8>,
    /// The most bytes to accept.
    limit: usize,
    /// Whether a write was refused, i.e. whether the output was too large.
    overflowed: bool,
}

impl CappedWriter {
    /// An empty writer accepting at most `limit` bytes.
    fn new(limit: usize) -> Self {
        Self { buf: Vec::new(), limit, overflowed: false }
    }
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A compile error as line and 1-based character column, with a message free of source text.
fn syntax_error(source: &str, err: &Error) -> SyntaxError {
    let start = err.range().map(|r| r.start);
    let line = err.line().unwrap_or_else(|| {
        start.and_then(|s| source.get(..s)).map_or(1, |before| before.matches('\n').count() + 1)
    });
    let column = start.and_then(|s| source.get(..s)).map_or(1, |before| {
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        before.get(line_start..).map_or(0, |text| text.chars().count()) + 1
    });
    SyntaxError { line, column, message: describe(err) }
}

/// Maps a MiniJinja render error to ours, with secrets scrubbed from the message.
///
/// `source` is only used to name the path of an undefined value (`env.MISSING`).
fn render_error(err: &Error, source: &str, env: &BTreeMap<String, String>) -> RenderError {
    if err.kind() == ErrorKind::OutOfFuel {
        return RenderError::OutOfFuel;
    }
    let message = if err.kind() == ErrorKind::TemplateNotFound {
        // The only template is the workflow itself: any lookup is include/import/extends.
        "include, import and extends are not available: a workflow is a single template".to_owned()
    } else if let Some(path) = undefined_path(err, source) {
        format!("undefined value: {path}")
    } else {
        describe(err)
    };
    RenderError::Template { line: err.line().unwrap_or(0), message: scrub(&message, env) }
}

/// For an undefined-value error, the expression it points at when that is a plain dotted path
/// (`env.MISSING`, `input.a.b`): a name helps fix the template, and a path of identifiers
/// cannot carry a value. Anything else (subscripts, calls, literals) is not quoted.
fn undefined_path<'s>(err: &Error, source: &'s str) -> Option<&'s str> {
    if err.kind() != ErrorKind::UndefinedError {
        return None;
    }
    let path = source.get(err.range()?)?.trim();
    let is_ident = |part: &str| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (path.len() <= 200 && path.split('.').all(is_ident)).then_some(path)
}

/// The kind's description plus the detail: never MiniJinja's debug rendering with source lines.
fn describe(err: &Error) -> String {
    let kind = kind_description(err.kind());
    match err.detail() {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind,
    }
}

/// MiniJinja's own wording for a kind, obtained from an error without detail or debug info.
fn kind_description(kind: ErrorKind) -> String {
    Error::from(kind).to_string()
}

/// Replaces every occurrence of every secret value in `message` by `***`.
///
/// Values are replaced longest first (so a secret containing another is not left half-shown)
/// and also in their escaped spellings, since MiniJinja quotes values Rust- or JSON-style.
fn scrub(message: &str, env: &BTreeMap<String, String>) -> String {
    let mut needles: Vec<String> = Vec::new();
    for secret in env.values().filter(|s| !s.is_empty()) {
        needles.push(secret.clone());
        for escaped in [format!("{secret:?}"), serde_json::to_string(secret).unwrap_or_default()] {
            let inner =
                escaped.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(&escaped);
            if !inner.is_empty() && inner != secret {
                needles.push(inner.to_owned());
            }
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = message.to_owned();
    for needle in &needles {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), SCRUBBED);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    const TOKEN: &str = "s3cr3t-value";

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("TOKEN".to_owned(), TOKEN.to_owned())])
    }

    fn render(src: &str) -> Result<String, RenderError> {
        Renderer::new(src, Limits::default()).unwrap().render(
            &json!({"name": "Ada", "n": 3}),
            &json!({"p": 1}),
            &env(),
        )
    }

    fn render_err(src: &str) -> RenderError {
        render(src).unwrap_err()
    }

    #[test]
    fn renders_the_three_names() {
        let out = render("{{ input.name }}-{{ parameters.p }}-{{ env.TOKEN }}").unwrap();
        assert_eq!(out, format!("Ada-1-{TOKEN}"));
    }

    #[test]
    fn builtins_work() {
        let out = render(
            "{{ input.name | upper }} {{ input | tojson }} {{ [1,2,3] | length }} \
             {% for i in range(3) %}{{ i }}{% endfor %} {{ none | default('d') }}",
        )
        .unwrap();
        assert_eq!(out, r#"ADA {"n":3,"name":"Ada"} 3 012 None"#);
    }

    #[test]
    fn no_other_globals() {
        for name in ["config", "self", "os", "debug", "secrets", "inputs"] {
            let err = render_err(&format!("{{{{ {name} }}}}"));
            assert!(matches!(err, RenderError::Template { .. }), "{name}: {err:?}");
        }
        assert!(matches!(render_err("{{ debug() }}"), RenderError::Template { .. }));
    }

    #[test]
    fn include_import_extends_fail_clearly() {
        for src in [
            r#"{% include "x" %}"#,
            r#"{% import "x" as m %}{{ m.y() }}"#,
            r#"{% from "x" import y %}{{ y() }}"#,
            r#"{% extends "x" %}"#,
            r#"{% include "/etc/passwd" %}"#,
            r#"{% include "workflow" %}"#,
            r#"{% include env.TOKEN %}"#,
        ] {
            compile(src).unwrap();
            let err = render_err(src);
            let RenderError::Template { line, message } = &err else {
                panic!("{src}: {err:?}");
            };
            assert_eq!(*line, 1, "{src}");
            assert!(message.contains("not available"), "{src}: {message}");
        }
    }

    #[test]
    fn strict_undefined_names_the_path_only() {
        let err = render_err("{{ env.MISSING }}");
        let RenderError::Template { line, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*line, 1);
        assert_eq!(message, "undefined value: env.MISSING");
        assert!(!message.contains("{{"), "{message}");
        let err = render_err("{{ inptu.name }}");
        assert!(err.to_string().ends_with("undefined value: inptu.name"), "{err}");
        // A subscript is not quoted: it could be an expression over secrets.
        let err = render_err("{{ input[env.TOKEN] }}");
        assert_eq!(err.to_string(), "template error at line 1: undefined value");
        assert!(matches!(
            render_err("{% if input.nope %}x{% endif %}"),
            RenderError::Template { .. }
        ));
    }

    #[test]
    fn default_and_defined_still_work_on_undefined() {
        assert_eq!(render(r#"{{ env.MISSING | default("x") }}"#).unwrap(), "x");
        assert_eq!(render(r#"{{ env.MISSING | d("y") }}"#).unwrap(), "y");
        assert_eq!(render("{% if env.MISSING is defined %}a{% else %}b{% endif %}").unwrap(), "b");
    }

    #[test]
    fn fuel_stops_nested_loops_quickly() {
        let start = Instant::now();
        let err = render_err(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        );
        assert_eq!(err, RenderError::OutOfFuel);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn huge_output_in_a_loop_is_too_large() {
        let start = Instant::now();
        let err = render_err(r#"{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}"#);
        assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn huge_literal_output_is_too_large() {
        let lit = "y".repeat(60_000);
        let err = render_err(&format!("{{% for i in range(100) %}}{lit}{{% endfor %}}"));
        assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
    }

    #[test]
    fn huge_string_repetition_is_refused_without_allocating() {
        // MiniJinja refuses repetitions over 100 MB itself; ours are caught by the budget.
        let start = Instant::now();
        let err = render_err(r#"{{ "x" * 100000000000 }}"#);
        assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
        let err = render_err(r#"{{ "x" * 10000000 }}"#);
        assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn captured_output_counts_against_the_budget() {
        let err = render_err(
            r#"{% set big %}{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}{% endset %}ok"#,
        );
        assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
        let err = render_err(
            r#"{% filter upper %}{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}{% endfilter %}"#,
        );
        assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
    }

    #[test]
    fn output_built_by_nested_macros_gets_the_full_limit() {
        let src = "{% macro item(i) %}{{ 'x' * 1000 }}{% endmacro %}\
                   {% macro page() %}{% for i in range(1000) %}{{ item(i) }}{% endfor %}{% endmacro %}\
                   {% macro wrap() %}{{ page() }}{% endmacro %}{{ wrap() }}";
        assert_eq!(render(src).unwrap().len(), 1_000_000);
    }

    #[test]
    fn long_literal_text_is_chunked_without_changing_output() {
        let long = "0123456789abcdef{".repeat(20);
        let cases = [
            long.clone(),
            format!("{{% for i in range(2) %}}{long}{{{{ i }}}}\n{{% endfor %}}"),
            format!("{{% raw %}}{long}{{{{ not a var }}}}{long}{{% endraw %}}"),
            format!("{{% raw -%}}   {long}   {{%- endraw %}}|"),
            format!("a  {{%- if true -%}}  {long}  {{%- endif -%}}  b"),
            format!("{{# {long} #}}{long}{{{{ '{long}' }}}}"),
            format!("é{}ü\n{long}\n", "ö".repeat(100)),
            format!("{{% set x %}}{long}{{% endset %}}{{{{ x | length }}}}"),
            format!("{long}{{{{ input.name }}}}{long}{{{{ 1 + }}}}"),
        ];
        for src in cases {
            let chunked = chunk_literal_text(&src);
            let Some(chunked) = chunked else {
                panic!("nothing cut in {src}");
            };
            let plain = Environment::new();
            let expected = plain.render_str(&src, json!({"input": {"name": "Ada"}}));
            let got = plain.render_str(&chunked, json!({"input": {"name": "Ada"}}));
            match (expected, got) {
                (Ok(e), Ok(g)) => assert_eq!(e, g, "{src}"),
                (Err(e), Err(g)) => assert_eq!(e.line(), g.line(), "{src}"),
                (e, g) => panic!("{src}: {e:?} vs {g:?}"),
            }
            assert_eq!(src.lines().count(), chunked.lines().count());
        }
        assert_eq!(chunk_literal_text("short {{ x }} text"), None);
    }

    #[test]
    fn captured_literal_text_is_bounded_by_fuel() {
        // Without chunking this piles up ~60 KB per unit of fuel: gigabytes before OutOfFuel.
        let lit = "y".repeat(60_000);
        let start = Instant::now();
        let err = render_err(&format!(
            "{{% set c %}}{{% for i in range(100000) %}}{{% for j in range(100000) %}}{lit}\
             {{% endfor %}}{{% endfor %}}{{% endset %}}{{{{ c | length }}}}"
        ));
        assert_eq!(err, RenderError::OutOfFuel);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn budget_is_per_render() {
        let r = Renderer::new(r#"{{ "x" * 600000 }}"#, Limits::default()).unwrap();
        for _ in 0..5 {
            assert_eq!(r.render(&json!(null), &json!({}), &env()).unwrap().len(), 600_000);
        }
    }

    #[test]
    fn wide_indent_is_refused() {
        assert!(matches!(
            render_err("{{ 'a\nb' | indent(1000000000000) }}"),
            RenderError::Template { .. }
        ));
        assert!(matches!(
            render_err("{{ 'a\nb' | indent(width=1000000000000) }}"),
            RenderError::Template { .. }
        ));
        assert!(matches!(
            render_err("{{ input | tojson(indent=1000000000000) }}"),
            RenderError::Template { .. }
        ));
        assert_eq!(render("{{ 'a\nb' | indent(2) }}").unwrap(), "a\n  b");
        assert_eq!(render("{{ [1] | tojson(indent=true) }}").unwrap(), "[\n  1\n]");
        assert_eq!(render("{{ [1] | tojson(1) }}").unwrap(), "[\n 1\n]");
    }

    #[test]
    fn allocation_sizing_filters_are_bounded() {
        let start = Instant::now();
        for src in [
            "{{ '%999999999999s' | format(1) }}",
            "{{ 'x%0999999999999d' | format(1) }}",
            "{{ '%.2000f' | format(1.5) }}",
            "{{ '%(a)99999999s' | format({'a': 1}) }}",
            "{{ '%99999999999999999999999s' | format(1) }}",
            "{{ [1] | slice(1000000000000) }}",
            "{{ [1] | batch(1000000000000, 0) }}",
            "{{ ('x' * 100000) | replace('x', 'x' * 100000) }}",
            "{{ ('x' * 100000) | replace('', 'x' * 100) }}",
        ] {
            let err = render_err(src);
            assert!(matches!(err, RenderError::Template { .. }), "{src}: {err:?}");
        }
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(
            render("{{ '%5s|%-3d|%%|%.2f' | format('a', 1, 2.5) }}").unwrap(),
            "    a|1  |%|2.50"
        );
        assert_eq!(render("{{ '%(k)s' | format({'k': 'v'}) }}").unwrap(), "v");
        assert_eq!(render("{{ [1,2,3] | slice(2) }}").unwrap(), "[[1, 2], [3]]");
        assert_eq!(render("{{ [1,2,3] | batch(2, 0) }}").unwrap(), "[[1, 2], [3, 0]]");
        assert_eq!(render("{{ 'abc' | replace('b', 'XY') }}").unwrap(), "aXYc");
    }

    #[test]
    fn recursive_macro_ends_as_an_error_not_a_stack_overflow() {
        // A 2 MiB stack, like tokio's blocking threads.
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| render_err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"))
            .unwrap();
        let err = handle.join().unwrap();
        assert!(matches!(err, RenderError::Template { .. } | RenderError::OutOfFuel), "{err:?}");
    }

    #[test]
    fn secrets_never_leak_through_errors() {
        for src in [
            "{{ env.TOKEN | int }}",
            "{{ env.TOKEN + 1 }}",
            "{{ env.TOKEN.foo.bar }}",
            "{{ range(env.TOKEN) }}",
            "{{ env.TOKEN * 'x' }}",
            "{{ env.TOKEN | float }}",
            "{{ {env.TOKEN: 1}[env.TOKEN ~ 'x'] }}",
            "{{ env.TOKEN | attr(env.TOKEN) }}",
            "{{ env.TOKEN() }}",
            "{{ input[env.TOKEN] }}",
            "{{ env.TOKEN | batch(env.TOKEN) }}",
        ] {
            let err = render_err(src);
            let shown = err.to_string();
            assert!(!shown.contains(TOKEN), "{src}: {shown}");
            assert!(!format!("{err:?}").contains(TOKEN), "{src}: {err:?}");
            assert!(!shown.contains("{{"), "{src}: source leaked: {shown}");
        }
    }

    #[test]
    fn escaped_secrets_are_scrubbed_too() {
        let nasty = "q\"uo\\te\nline".to_owned();
        let env = BTreeMap::from([("X".to_owned(), nasty.clone())]);
        let err = Renderer::new("{{ env.X | int }}", Limits::default())
            .unwrap()
            .render(&json!(null), &json!({}), &env)
            .unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains(&nasty), "{shown}");
        assert!(!shown.contains(r#"q\"uo\\te\nline"#), "{shown}");
    }

    #[test]
    fn scrub_prefers_longer_secrets() {
        let env = BTreeMap::from([
            ("A".to_owned(), "abc".to_owned()),
            ("B".to_owned(), "abcdef".to_owned()),
            ("E".to_owned(), String::new()),
        ]);
        assert_eq!(scrub("x abcdef y abc", &env), "x *** y ***");
    }

    #[test]
    fn source_lines_are_not_in_errors() {
        let err = render_err("line one\n{{ input.name + 1 }} SOURCE_MARKER");
        let RenderError::Template { line, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*line, 2);
        assert!(!message.contains("SOURCE_MARKER"), "{message}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = compile("hello\n{{ foo").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.column >= 1, "{err:?}");
        let err = compile("{% for x in y %}").unwrap_err();
        assert_eq!(err.line, 1, "{err:?}");
        let err = compile("a\nb\n  {{ 1 + }}").unwrap_err();
        assert_eq!(err.line, 3, "{err:?}");
        assert!(err.column > 1, "{err:?}");
        let err = compile("é\n  é {% endfor %}").unwrap_err();
        // Column 8 is `endfor` (the statement name), counted in characters: `é` is 2 bytes.
        assert_eq!((err.line, err.column), (2, 8), "{err:?}");
        assert!(!err.message.contains("endfor %}"), "{err:?}");
    }

    #[test]
    fn empty_template_is_fine() {
        compile("").unwrap();
        assert_eq!(render("").unwrap(), "");
    }

    #[test]
    fn oversized_source_is_refused() {
        let src = "x".repeat(MAX_SOURCE_BYTES + 1);
        let err = compile(&src).unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        compile(&"x".repeat(MAX_SOURCE_BYTES)).unwrap();
    }

    #[test]
    fn no_auto_escape_and_trailing_newline_kept() {
        assert_eq!(render("{{ '<a & \"b\">' }}\n").unwrap(), "<a & \"b\">\n");
        assert_eq!(render("{{ input | tojson }}").unwrap(), r#"{"n":3,"name":"Ada"}"#);
    }

    #[test]
    fn renderer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Renderer>();
        let r = std::sync::Arc::new(Renderer::new("{{ input }}", Limits::default()).unwrap());
        std::thread::scope(|scope| {
            // Collected so that all four run before the first join.
            #[allow(clippy::needless_collect)]
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let r = std::sync::Arc::clone(&r);
                    scope.spawn(move || r.render(&json!(i), &json!({}), &env()).unwrap())
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i.to_string());
            }
        });
    }

    #[test]
    fn finish_text_and_json() {
        assert_eq!(finish(OutputFormat::Text, "hi".into()).unwrap(), json!("hi"));
        assert_eq!(finish(OutputFormat::Json, r#"{"a": 1}"#.into()).unwrap(), json!({"a": 1}));
        assert_eq!(
            finish(OutputFormat::Json, "oops".into()).unwrap_err(),
            RenderError::NotJson("line 1, column 1: expected value".into())
        );
        // serde_json reads `n` as the start of `null`, hence "expected ident" at column 2.
        assert_eq!(
            finish(OutputFormat::Json, "not json".into()).unwrap_err(),
            RenderError::NotJson("line 1, column 2: expected ident".into())
        );
        let err =
            finish(OutputFormat::Json, format!(r#"{{"t": "{TOKEN}"}} trailing"#)).unwrap_err();
        let RenderError::NotJson(message) = &err else {
            panic!("{err:?}");
        };
        assert!(message.starts_with("line 1, column"), "{message}");
        assert!(message.ends_with("trailing characters"), "{message}");
        assert!(!message.contains(TOKEN));
        let err = finish(OutputFormat::Json, "{\"a\":".into()).unwrap_err();
        assert!(
            matches!(err, RenderError::NotJson(ref m) if m.ends_with("unexpected end of input"))
        );
    }

    /// KNOWN GAP, kept as a failing test: MiniJinja charges one unit of fuel for `*` and `~`
    /// whatever the size, offers no hook on operators, and caps a string repetition at 100 MB
    /// only. A loop of 100 MB repetitions burns ~0.2 s of CPU per unit of fuel, and `~`
    /// doubling grows a value without bound. Fixing it needs MiniJinja changes or process
    /// isolation (rlimits / cgroup) around renders.
    #[test]
    #[ignore = "known gap: string operators are not metered by MiniJinja's fuel"]
    fn known_gap_string_operators_are_not_metered() {
        let start = Instant::now();
        let err = render_err(
            "{% for i in range(20) %}{% set a = 'x' * (99999900 + i) %}{% endfor %}{{ missing }}",
        );
        assert!(matches!(err, RenderError::Template { .. }));
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        let start = Instant::now();
        let err = render_err(
            "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(8) %}\
             {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ missing }}",
        );
        assert!(matches!(err, RenderError::Template { .. }));
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    }

    /// Not a test of behaviour: prints the numbers for the report (`--ignored --nocapture`).
    #[test]
    #[ignore]
    fn measure() {
        let r = Renderer::new(
            r#"{"greeting": "hello {{ input.name }}", "token": "{{ env.TOKEN }}"}"#,
            Limits::default(),
        )
        .unwrap();
        let input = json!({"name": "Ada"});
        let params = json!({});
        let env = env();
        let n = 10_000;
        let start = Instant::now();
        for _ in 0..n {
            let text = r.render(&input, &params, &env).unwrap();
            std::hint::black_box(text);
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("small template: {per:.2} µs per render");
        let start = Instant::now();
        let err = render_err(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        );
        println!("OutOfFuel at fuel 1_000_000 after {:?} ({err:?})", start.elapsed());
        let start = Instant::now();
        let err = render_err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        println!("recursive macro: {:?} after {:?}", err, start.elapsed());
    }
}
