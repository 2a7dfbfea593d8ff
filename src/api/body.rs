//! `OptionalJson<T>`: a JSON body that may be absent (login with HTTP Basic, logout).
//! poem-openapi has no optional request payload of its own.

use poem::{Request, RequestBody};
use poem_openapi::payload::{Json, Payload as _};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// `Some(value)` when a JSON body was sent, `None` when the body is empty.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<T> as poem_openapi::payload::Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<T>>::CONTENT_TYPE,
                schema: <Json<T>>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let declared_empty = request
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        if request.content_type().is_none() || declared_empty {
            return Ok(Self(None));
        }
        if !<Json<T>>::check_content_type(request.content_type().unwrap_or_default()) {
            return Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: request.content_type().unwrap_or_default().to_string(),
            }
            .into());
        }
        Ok(Self(Some(
            <Json<T> as poem_openapi::payload::ParsePayload>::from_request(request, body).await?.0,
        )))
    }
}
