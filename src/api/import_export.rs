//! `GET /api/environments/{id}/export/` and `POST /api/environments/{id}/import/`: an
//! environment as a `.env` file (or JSON/YAML) and back.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::types::Binary;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi, ResponseContent};

use crate::api::error::ApiResult;
use crate::api::secrets_support::{caller, read, write};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::secrets::environments;
use crate::domain::secrets::transfer::{self, ImportSummary};
use crate::domain::{Error, ErrorCode, Role};
use crate::services::Services;

/// Export formats.
const FORMATS: [&str; 3] = ["env", "json", "yaml"];

/// The exported file in one of the three formats.
#[derive(ResponseContent)]
pub enum ExportBody {
    /// The `.env` file: header comments, then `KEY=value` lines sorted by key, quoted so that
    /// python-dotenv, dotenvy and bash read back the exact values.
    #[oai(content_type = "text/plain; charset=utf-8")]
    Env(PlainText<String>),
    /// `?format=json`: an object of key → value.
    #[oai(content_type = "application/json")]
    Json(PlainText<String>),
    /// `?format=yaml`: a mapping of key → value.
    #[oai(content_type = "application/x-yaml")]
    Yaml(PlainText<String>),
}

/// One 200 response with the body in the chosen format (three 200 variants would document
/// only the last one).
#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The environment's variables as a file. Keys whose values did not open are left out of
    /// it (a marker there would be stored as the value by a later import) and named in
    /// `X-Decryption-Warnings`, as KeyNest does.
    #[oai(status = 200)]
    Ok(
        ExportBody,
        /// `attachment; filename="<project>_<environment>.<env|json|yaml>"`.
        #[oai(header = "Content-Disposition")]
        String,
        /// `Failed to decrypt: K1, K2`, only when some values did not open.
        #[oai(header = "X-Decryption-Warnings")]
        Option<String>,
    ),
}

/// The upload: `file` (a `.env` file, or a JSON object), or the same text as `data`.
#[derive(Debug, Multipart)]
pub struct ImportForm {
    pub file: Option<Binary<Vec<u8>>>,
    pub data: Option<String>,
    /// `false` keeps the values of keys that already exist (also accepted as a query parameter).
    pub overwrite: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename = "ImportSummary")]
pub struct SummaryOut {
    /// New variables created.
    pub imported: u64,
    /// Existing variables the file set, as KeyNest counts them. Only those whose value changed
    /// get a new version; one that already held the file's value is left as it was.
    pub updated: u64,
    /// Lines that could not be imported.
    pub failed: u64,
    /// `imported + updated`.
    pub total_variables: u64,
}

#[derive(Debug, Object)]
#[oai(rename = "FailedImport")]
pub struct FailedOut {
    /// 1-based line where the entry starts.
    pub line: u64,
    /// The name as written, when there was one.
    pub key: Option<String>,
    pub error: String,
}

#[derive(Debug, Object)]
#[oai(rename = "ImportResult")]
pub struct ImportOut {
    pub message: String,
    pub summary: SummaryOut,
    /// null when every line was imported.
    pub failed_imports: Option<Vec<FailedOut>>,
}

impl From<ImportSummary> for ImportOut {
    fn from(s: ImportSummary) -> Self {
        let failed: Vec<FailedOut> = s
            .failed_imports
            .into_iter()
            .map(|e| FailedOut { line: e.line as u64, key: e.key, error: e.error })
            .collect();
        let message = if s.kept == 0 {
            "Import completed successfully".to_string()
        } else {
            format!("Import completed successfully; {} existing variables kept", s.kept)
        };
        Self {
            message,
            summary: SummaryOut {
                imported: s.imported,
                updated: s.updated,
                failed: failed.len() as u64,
                total_variables: s.imported + s.updated,
            },
            failed_imports: (!failed.is_empty()).then_some(failed),
        }
    }
}

fn parse_bool(field: &str, s: &str) -> Result<bool, Error> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid(field, "Must be true or false.")),
    }
}

fn upload_text(form: ImportForm, limit: u64) -> Result<(String, Option<String>), Error> {
    let bytes =
        match (form.file, form.data) {
            (Some(f), _) => f.0,
            (None, Some(d)) => d.into_bytes(),
            (None, None) => return Err(Error::invalid(
                "file",
                "No file or data provided. Use \"file\" for upload or \"data\" for raw content.",
            )),
        };
    if bytes.len() as u64 > limit {
        return Err(Error::new(ErrorCode::TooLarge, "File too large.")
            .with_details(serde_json::json!(format!("The limit is {limit} bytes."))));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid("file", "The file must be UTF-8 text."))?;
    Ok((text, form.overwrite))
}

#[derive(Default)]
pub struct ImportExportApi;

#[OpenApi(tag = "ApiTags::Variables")]
impl ImportExportApi {
    /// Exports an environment (any member): `.env` by default, `?format=json` or `yaml`.
    #[oai(
        path = "/api/environments/:id/export/",
        method = "get",
        operation_id = "environments_export_retrieve"
    )]
    async fn export(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        format: Query<Option<String>>,
    ) -> ApiResult<ExportResponse> {
        let format = format.0.unwrap_or_else(|| "env".into());
        if !FORMATS.contains(&format.as_str()) {
            return Err(Error::invalid("format", "Invalid format. Use env, json or yaml.").into());
        }
        let c = caller(req, auth);
        let st = Arc::clone(&state);
        let (c, export) = tokio::task::spawn_blocking(move || {
            let e = read(&st, |tx, vault| transfer::read_export(tx, &c, vault, id.0));
            (c, e)
        })
        .await
        .map_err(Error::from)?;
        let export = Arc::new(export?);
        let audited = Arc::clone(&export);
        let fmt = format.clone();
        write(&state, c, move |tx, c, _| transfer::record_export(tx, c, &audited, &fmt)).await?;
        let disposition = |ext: &str| format!("attachment; filename=\"{}\"", export.file_name(ext));
        let (body, ext) = match format.as_str() {
            "json" => (
                ExportBody::Json(PlainText(
                    serde_json::to_string_pretty(&export.json()).map_err(Error::from)?,
                )),
                "json",
            ),
            "yaml" => (
                ExportBody::Yaml(PlainText(
                    serde_norway::to_string(&export.json()).map_err(Error::from)?,
                )),
                "yaml",
            ),
            _ => (
                ExportBody::Env(PlainText(export.env_file(time::OffsetDateTime::now_utc()))),
                "env",
            ),
        };
        Ok(ExportResponse::Ok(body, disposition(ext), export.decryption_warnings()))
    }

    /// Imports a `.env` file (or a JSON object) into an environment (editors and admins).
    /// Good lines commit together; bad lines are listed in `failed_imports`.
    #[oai(
        path = "/api/environments/:id/import/",
        method = "post",
        operation_id = "environments_import_create"
    )]
    async fn import(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        overwrite: Query<Option<String>>,
        form: ImportForm,
    ) -> ApiResult<Json<ImportOut>> {
        let c = caller(req, auth);
        let env = id.0;
        // Refuse callers who may not import before decoding and parsing the upload (the body
        // itself was read, within the upload limit, when the form was extracted).
        read(&state, |tx, _| {
            let e = environments::load(tx, &c, env, Role::Viewer)?;
            c.require_write(e.organization_id, Role::Editor, "Environment")
        })?;
        let (text, form_overwrite) = upload_text(form, state.config.server.max_upload_bytes)?;
        let overwrite = match overwrite.0.or(form_overwrite) {
            Some(s) => parse_bool("overwrite", &s)?,
            None => true,
        };
        let parsed = tokio::task::spawn_blocking(move || transfer::parse_upload(&text))
            .await
            .map_err(Error::from)?;
        if parsed.entries.len() > transfer::MAX_IMPORT_KEYS {
            return Err(Error::invalid(
                "file",
                format!("Too many variables (max {} per import).", transfer::MAX_IMPORT_KEYS),
            )
            .into());
        }
        let parsed = Arc::new(parsed);
        let summary = write(&state, c, move |tx, c, vault| {
            transfer::import(tx, c, vault, env, &parsed, overwrite)
        })
        .await?;
        Ok(Json(summary.into()))
    }
}
