//! django-cfg's proto-file registry: `GET /api/grpc/proto-files/` (list), `…/{app_label}/`
//! (download, `PUT` upload, `DELETE`), `…/download-all/` (zip) and `POST …/generate/`
//! (proto3 of Gatehouse's own API, see [`generate`]). django-cfg documents these only under
//! `/cfg/grpc/proto-files/…`; both prefixes answer (the `/cfg` one outside the document).

pub mod generate;

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json, PlainText};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::body::OptionalJson;
use crate::api::catalog::ApiCatalog;
use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::audit::Actor;
use crate::domain::protos::{self, archive, ProtoFile, Upload, MAX_PROTO_BYTES, PROTO_DIR};
use crate::domain::{Error, ErrorCode};
use crate::services::Services;

#[derive(Default)]
pub struct ProtoFilesApi;

/// One file as django-cfg lists it.
#[derive(Debug, Object)]
#[oai(rename = "ProtoFile")]
pub struct ProtoFileOut {
    pub app_label: String,
    /// `<app_label>.proto`.
    pub filename: String,
    pub size_bytes: u64,
    /// Empty when the file declares none.
    pub package: String,
    /// Messages, nested ones included.
    pub messages_count: u64,
    pub services_count: u64,
    /// Epoch seconds with the fraction.
    pub created_at: f64,
    pub modified_at: f64,
}

impl From<ProtoFile> for ProtoFileOut {
    fn from(f: ProtoFile) -> Self {
        Self {
            filename: f.filename(),
            app_label: f.app_label,
            size_bytes: f.size_bytes,
            package: f.package,
            messages_count: f.messages_count,
            services_count: f.services_count,
            created_at: f.created_at,
            modified_at: f.modified_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename = "ProtoFileList")]
pub struct ProtoFileList {
    pub files: Vec<ProtoFileOut>,
    pub total_files: u64,
    /// Where the files live: the data file (`redb://proto_files`), not a directory.
    pub proto_dir: String,
}

/// `POST …/generate/`: both fields optional, as is the body.
#[derive(Debug, Object)]
#[oai(rename = "ProtoGenerateRequest")]
pub struct GenerateRequest {
    /// App labels to generate (the API tags in snake case); absent or empty: every tag.
    pub apps: Option<Vec<String>>,
    /// Rewrite files whose text is unchanged too.
    pub force: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(rename = "ProtoGenerateError")]
pub struct GenerateError {
    pub app: String,
    pub error: String,
}

#[derive(Debug, Object)]
#[oai(rename = "ProtoGenerateResponse")]
pub struct GenerateResponse {
    /// `success` once the run completed (per-app failures are in `errors`).
    pub status: String,
    /// App labels written (unchanged files are skipped unless `force`).
    pub generated: Vec<String>,
    pub generated_count: u64,
    pub errors: Vec<GenerateError>,
    pub proto_dir: String,
}

/// The file's text.
#[derive(ApiRequest)]
pub enum ProtoUpload {
    #[oai(content_type = "text/plain")]
    Text(PlainText<String>),
    #[oai(content_type = "application/octet-stream")]
    Bytes(Binary<Vec<u8>>),
}

impl ProtoUpload {
    /// The text, at most [`MAX_PROTO_BYTES`] (413) and UTF-8 (400).
    fn into_text(self) -> Result<String, Error> {
        let bytes = match self {
            Self::Text(t) => t.0.into_bytes(),
            Self::Bytes(b) => b.0,
        };
        if bytes.len() > MAX_PROTO_BYTES {
            return Err(Error::new(ErrorCode::TooLarge, "Proto file too large.").with_details(
                serde_json::json!(format!("The limit is {MAX_PROTO_BYTES} bytes.")),
            ));
        }
        String::from_utf8(bytes).map_err(|_| Error::invalid("body", "The file must be UTF-8 text."))
    }
}

#[derive(ApiResponse)]
pub enum PutResponse {
    /// The file was replaced.
    #[oai(status = 200)]
    Ok(Json<ProtoFileOut>),
    /// The file was created.
    #[oai(status = 201)]
    Created(Json<ProtoFileOut>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum DownloadResponse {
    /// The file's text.
    #[oai(status = 200, content_type = "text/plain; charset=utf-8")]
    Ok(
        PlainText<String>,
        /// `attachment; filename="<app_label>.proto"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum ZipResponse {
    /// Every file in one zip archive.
    #[oai(status = 200, content_type = "application/zip")]
    Ok(
        Binary<Vec<u8>>,
        /// `attachment; filename="protos.zip"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

/// Parses off the async threads (a file may be a megabyte).
async fn summarize(label: String, text: String) -> Result<Upload, Error> {
    tokio::task::spawn_blocking(move || {
        let summary = protos::summarize(&format!("{label}.proto"), &text)?;
        Ok(Upload { app_label: label, text, summary })
    })
    .await
    .map_err(Error::from)?
}

#[OpenApi(tag = "ApiTags::ProtoFiles")]
impl ProtoFilesApi {
    /// Every proto file, by app label (anyone signed in).
    #[oai(path = "/api/grpc/proto-files/", method = "get", operation_id = "grpc_proto_files_list")]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        _auth: Authenticated,
    ) -> ApiResult<Json<ProtoFileList>> {
        let files = state.store.read(protos::list)?;
        Ok(Json(ProtoFileList {
            total_files: files.len() as u64,
            files: files.into_iter().map(ProtoFileOut::from).collect(),
            proto_dir: PROTO_DIR.into(),
        }))
    }

    /// Every proto file in one zip archive (anyone signed in).
    #[oai(
        path = "/api/grpc/proto-files/download-all/",
        method = "get",
        operation_id = "grpc_proto_files_download_all_retrieve"
    )]
    async fn download_all(
        &self,
        state: Data<&Arc<Services>>,
        _auth: Authenticated,
    ) -> ApiResult<ZipResponse> {
        let st = Arc::clone(&state);
        let zip = tokio::task::spawn_blocking(move || {
            let files = st.store.read(|tx| -> Result<Vec<(String, String)>, Error> {
                let listed = protos::list(tx)?;
                listed
                    .iter()
                    .map(|f| Ok((f.filename(), protos::get(tx, &f.app_label)?.1)))
                    .collect()
            })?;
            archive::zip_files(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        })
        .await
        .map_err(Error::from)??;
        Ok(ZipResponse::Ok(Binary(zip), "attachment; filename=\"protos.zip\"".into()))
    }

    /// Writes proto3 files of Gatehouse's own API, one per tag (staff, audited).
    #[oai(
        path = "/api/grpc/proto-files/generate/",
        method = "post",
        operation_id = "grpc_proto_files_generate_create"
    )]
    async fn generate(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: OptionalJson<GenerateRequest>,
    ) -> ApiResult<Json<GenerateResponse>> {
        let p = auth.into_principal();
        p.require_staff()?;
        let (apps, force) = body.0.map_or((None, false), |b| (b.apps, b.force.unwrap_or(false)));
        let apps = apps.filter(|a| !a.is_empty());
        for app in apps.iter().flatten() {
            protos::validate_label(app).map_err(|_| {
                Error::invalid("apps", format!("\"{app}\" is not a valid app label."))
            })?;
        }
        let (uploads, errors) = tokio::task::spawn_blocking(move || generate_uploads(apps))
            .await
            .map_err(Error::from)?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let generated = state
            .store
            .write(move |tx| protos::store_generated(tx, &p, &actor, &uploads, force))
            .await?;
        Ok(Json(GenerateResponse {
            status: "success".into(),
            generated_count: generated.len() as u64,
            generated,
            errors,
            proto_dir: PROTO_DIR.into(),
        }))
    }

    /// One proto file's text (anyone signed in).
    #[oai(
        path = "/api/grpc/proto-files/:app_label/",
        method = "get",
        operation_id = "grpc_proto_files_retrieve"
    )]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        _auth: Authenticated,
        app_label: Path<String>,
    ) -> ApiResult<DownloadResponse> {
        let (file, text) = state.store.read(|tx| protos::get(tx, &app_label.0))?;
        let disposition = format!("attachment; filename=\"{}\"", file.filename());
        Ok(DownloadResponse::Ok(PlainText(text), disposition))
    }

    /// Uploads a proto file (staff, audited): UTF-8 text up to 1 MiB that parses as proto2
    /// or proto3, else 400 with the parser's line and message.
    #[oai(
        path = "/api/grpc/proto-files/:app_label/",
        method = "put",
        operation_id = "grpc_proto_files_update"
    )]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        app_label: Path<String>,
        body: ProtoUpload,
    ) -> ApiResult<PutResponse> {
        let p = auth.into_principal();
        p.require_staff()?;
        protos::validate_label(&app_label.0)?;
        let upload = Arc::new(summarize(app_label.0, body.into_text()?).await?);
        let actor = Actor::from_principal(&p, client_ip(req));
        let (file, created) =
            state.store.write(move |tx| protos::put(tx, &p, &actor, &upload)).await?;
        Ok(if created {
            PutResponse::Created(Json(file.into()))
        } else {
            PutResponse::Ok(Json(file.into()))
        })
    }

    /// Deletes a proto file (staff, audited).
    #[oai(
        path = "/api/grpc/proto-files/:app_label/",
        method = "delete",
        operation_id = "grpc_proto_files_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        app_label: Path<String>,
    ) -> ApiResult<DeleteResponse> {
        let p = auth.into_principal();
        let actor = Actor::from_principal(&p, client_ip(req));
        let label = app_label.0;
        state.store.write(move |tx| protos::delete(tx, &p, &actor, &label)).await?;
        Ok(DeleteResponse::NoContent)
    }
}

/// The generated files of `apps` (every tag when `None`), summarised, and an error for each
/// app that is not a tag.
fn generate_uploads(apps: Option<Vec<String>>) -> (Vec<Upload>, Vec<GenerateError>) {
    let mut all = generate::generate_all(ApiCatalog::shared());
    let wanted: Vec<String> = apps.unwrap_or_else(|| all.keys().cloned().collect());
    let (mut uploads, mut errors) = (Vec::new(), Vec::new());
    for app in wanted {
        let Some((_, text)) = all.remove(&app) else {
            if !uploads.iter().any(|u: &Upload| u.app_label == app) {
                errors.push(GenerateError { app, error: "No API tag has this app label.".into() });
            }
            continue;
        };
        match protos::summarize(&format!("{app}.proto"), &text) {
            Ok(summary) => uploads.push(Upload { app_label: app, text, summary }),
            Err(e) => errors.push(GenerateError { error: format!("{e}: {:?}", e.details), app }),
        }
    }
    (uploads, errors)
}
