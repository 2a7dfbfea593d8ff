//! Rendering: the templates (embedded at compile time, HTML auto-escaped), the context every
//! page gets, and the answers that are not a page of their own — redirects, message pages,
//! domain errors as pages, the static assets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use minijinja::Environment;
use poem::http::{header, StatusCode};
use poem::web::Path;
use poem::{handler, Request, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::{Error, ErrorCode, Principal};

/// What the console layer found out about the request.
#[derive(Clone)]
pub struct Ctx {
    /// The signed-in user, if any.
    pub principal: Option<Principal>,
    /// The browser's CSRF token, for the forms of the page.
    pub csrf: String,
    pub ip: Option<IpAddr>,
    /// Whether the server speaks TLS (cookies are then `Secure`).
    pub tls: bool,
}

impl Ctx {
    /// The context of `req` (the layer always sets one).
    pub fn of(req: &Request) -> Ctx {
        req.extensions().get::<Ctx>().cloned().unwrap_or_else(|| Ctx {
            principal: None,
            csrf: String::new(),
            ip: None,
            tls: true,
        })
    }

    /// The signed-in user, or the sign-in page (coming back here afterwards).
    pub fn signed_in(&self, req: &Request) -> Result<Principal, Response> {
        match &self.principal {
            Some(p) => Ok(p.clone()),
            None => {
                let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/admin/");
                let target: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                Err(redirect(&format!("/admin/login/?{target}")))
            }
        }
    }

    /// A page: `template` with `data` and what every page shows (the user, the CSRF token).
    pub fn render(
        &self,
        status: StatusCode,
        template: &str,
        section: &str,
        data: Value,
    ) -> Response {
        let me = self.principal.as_ref().map(|p| {
            let name = if p.full_name.trim().is_empty() { &p.username } else { &p.full_name };
            json!({"name": name, "email": p.email, "is_staff": p.is_staff})
        });
        let mut ctx = json!({"me": me, "csrf": self.csrf, "section": section});
        if let (Value::Object(base), Value::Object(extra)) = (&mut ctx, data) {
            base.extend(extra);
        }
        render_html(status, template, &ctx)
    }

    /// A page for a domain error: a form's field errors are shown by the caller; anything
    /// else is a message page with the error's status.
    /// A path id, or the not-found page: anything that is not an id names no page.
    pub fn path_id(&self, raw: &str) -> Result<u64, Response> {
        super::form::id(raw).map_err(|e| self.error_page(&e))
    }

    pub fn error_page(&self, e: &Error) -> Response {
        if e.code == ErrorCode::Internal {
            tracing::error!(error = %e, cause = ?e.cause(), "console request failed");
        }
        let status = crate::api::error::status_of(e.code);
        let title = match e.code {
            ErrorCode::NotFound => "Not found",
            ErrorCode::Forbidden => "Not allowed",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Internal => "Something went wrong",
            _ => "Could not do that",
        };
        let message = match e.code {
            ErrorCode::Internal => "The server could not complete this. It has been logged.",
            _ => e.message.as_str(),
        };
        self.render(status, "error.html", "", json!({"title": title, "message": message}))
    }
}

/// Field errors of `e` as `{field: [messages]}` (its message under `non_field_errors` when it
/// names no field).
pub fn field_errors(e: &Error) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(Value::Object(fields)) = &e.details {
        for (field, msgs) in fields {
            let list = match msgs {
                Value::Array(a) => a.iter().map(text_of).collect(),
                other => vec![text_of(other)],
            };
            out.insert(field.clone(), list);
        }
    }
    if out.is_empty() {
        out.insert("non_field_errors".into(), vec![e.message.clone()]);
    }
    out
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `e` is about what the user typed (shown on the form) rather than the request.
pub fn is_form_error(e: &Error) -> bool {
    matches!(e.code, ErrorCode::Invalid | ErrorCode::Conflict)
}

/// A message page (signed-out layout: used where the layer answers before any handler).
pub fn message(status: StatusCode, title: &str, message: &str) -> Response {
    render_html(status, "error.html", &json!({"title": title, "message": message}))
}

/// A poem error (an unknown route, a wrong method) as a page.
pub fn from_poem_error(e: &poem::Error) -> Response {
    let status = e.status();
    let (title, text) = match status {
        StatusCode::NOT_FOUND => ("Not found", "There is no such page."),
        StatusCode::METHOD_NOT_ALLOWED => ("Not allowed", "This page does not take that method."),
        s if s.is_server_error() => ("Something went wrong", "The server could not answer."),
        _ => ("Could not do that", "The request could not be read."),
    };
    message(status, title, text)
}

/// `303 See Other` to `to` (after a form, the browser fetches the result with GET).
pub fn redirect(to: &str) -> Response {
    Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, to).finish()
}

fn render_html(status: StatusCode, template: &str, ctx: &impl Serialize) -> Response {
    let (status, html) = match templates().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, html),
        Err(e) => {
            // A template bug, not the client's: logged, and said plainly.
            tracing::error!(error = %e, template, "console template failed");
            let page = "<!doctype html><title>Error</title><p>The page could not be rendered.</p>";
            (StatusCode::INTERNAL_SERVER_ERROR, page.to_string())
        }
    };
    Response::builder().status(status).content_type("text/html; charset=utf-8").body(html)
}

/// The templates, parsed once. A template that does not parse is a build mistake: the unit
/// test below renders every one.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(error = %e, name, "console template does not parse");
            }
        }
        env
    })
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_otp.html", include_str!("templates/login_otp.html")),
    ("home.html", include_str!("templates/home.html")),
    ("projects.html", include_str!("templates/projects.html")),
    ("project.html", include_str!("templates/project.html")),
    ("environment.html", include_str!("templates/environment.html")),
    ("variable.html", include_str!("templates/variable.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("traffic.html", include_str!("templates/traffic.html")),
    ("org.html", include_str!("templates/org.html")),
    ("profile.html", include_str!("templates/profile.html")),
    ("tokens.html", include_str!("templates/tokens.html")),
    ("deployments.html", include_str!("templates/deployments.html")),
    ("deployment.html", include_str!("templates/deployment.html")),
];

/// The one stylesheet and the one script, cached by the browser for a day.
#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript; charset=utf-8"),
        _ => return message(StatusCode::NOT_FOUND, "Not found", "There is no such file."),
    };
    Response::builder()
        .content_type(kind)
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(body)
}

/// `resp` with `status` in place of a rendered page's 200 (a refused form keeps its page).
pub fn with_status(mut resp: Response, status: StatusCode) -> Response {
    if resp.status() == StatusCode::OK {
        resp.set_status(status);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes() {
        let env = templates();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name} does not parse");
        }
        let html = env
            .get_template("error.html")
            .and_then(|t| t.render(json!({"title": "<b>", "message": "a&b"})))
            .unwrap();
        assert!(html.contains("&lt;b&gt;") && html.contains("a&amp;b"), "{html}");
    }
}
