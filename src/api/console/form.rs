//! A submitted form: read within the body limit, its CSRF field checked against the browser's
//! token before anything else looks at it.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::{Body, Response};

use super::page::{message, Ctx};
use crate::crypto::ct_eq;

/// The fields of an `application/x-www-form-urlencoded` body (the last value of a repeated
/// name wins).
pub struct Form(BTreeMap<String, String>);

/// The answer when a form's token is missing or wrong: a stale page or another site.
pub fn forged() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form expired or did not come from this console. Go back, reload the page and \
         try again.",
    )
}

/// `token` is the browser's CSRF token.
pub fn token_matches(ctx: &Ctx, token: &str) -> bool {
    !ctx.csrf.is_empty() && ct_eq(ctx.csrf.as_bytes(), token.as_bytes())
}

impl Form {
    /// Reads and checks a form body of at most `limit` bytes.
    pub async fn read(ctx: &Ctx, body: Body, limit: u64) -> Result<Form, Response> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = body.into_bytes_limit(limit).await.map_err(|_| {
            message(StatusCode::PAYLOAD_TOO_LARGE, "Too large", "The form is over the size limit.")
        })?;
        let fields: BTreeMap<String, String> =
            form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let form = Form(fields);
        if !token_matches(ctx, form.get("csrf")) {
            return Err(forged());
        }
        Ok(form)
    }

    /// The field's value, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// The field's value, trimmed, or `None` when blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim().to_string()).filter(|s| !s.is_empty())
    }

    /// A checkbox: ticked when sent with any value but "false".
    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v != "false")
    }
}

/// A path id; anything that is not one is simply not found.
pub fn id(raw: &str) -> Result<u64, crate::domain::Error> {
    raw.parse().map_err(|_| crate::domain::Error::not_found("Page"))
}
