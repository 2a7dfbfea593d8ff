//! TEMPORARY (replaced by the helper's module before commit).
use std::collections::BTreeMap;
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError { pub line: usize, pub column: usize, pub message: String }
pub fn compile(source: &str) -> Result<(), SyntaxError> {
    let env = minijinja::Environment::new();
    env.template_from_str(source).map(|_| ()).map_err(|e| SyntaxError { line: e.line().unwrap_or(1), column: 1, message: e.kind().to_string() })
}
#[derive(Debug, Clone, Copy)]
pub struct Limits { pub fuel: u64, pub max_output_bytes: usize }
impl Default for Limits { fn default() -> Self { Self { fuel: 1_000_000, max_output_bytes: 1 << 20 } } }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat { Text, Json }
pub struct Renderer { env: minijinja::Environment<'static> }
impl Renderer {
    pub fn new(source: &str, limits: Limits) -> Result<Self, SyntaxError> {
        compile(source)?;
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(limits.fuel));
        env.add_template_owned("t", source.to_string()).map_err(|e| SyntaxError { line: 1, column: 1, message: e.to_string() })?;
        Ok(Self { env })
    }
    pub fn render(&self, input: &serde_json::Value, parameters: &serde_json::Value, env: &BTreeMap<String, String>) -> Result<String, RenderError> {
        let t = self.env.get_template("t").map_err(|e| RenderError::Template { line: 1, message: e.kind().to_string() })?;
        t.render(minijinja::context! { input => input, parameters => parameters, env => env }).map_err(|e| RenderError::Template { line: e.line().unwrap_or(1), message: e.kind().to_string() })
    }
}
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("template error at line {line}: {message}")] Template { line: usize, message: String },
    #[error("the template ran out of fuel (a loop too long?)")] OutOfFuel,
    #[error("the output is larger than {limit} bytes")] OutputTooLarge { limit: usize },
    #[error("the output is not valid JSON: {0}")] NotJson(String),
}
pub fn finish(format: OutputFormat, text: String) -> Result<serde_json::Value, RenderError> {
    match format { OutputFormat::Text => Ok(serde_json::Value::String(text)), OutputFormat::Json => serde_json::from_str(&text).map_err(|e| RenderError::NotJson(e.to_string())) }
}
