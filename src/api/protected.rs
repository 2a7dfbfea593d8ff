//! Which operations need a credential, read from the OpenAPI document (an operation that
//! takes [`crate::api::security::Authenticated`] declares `security`). The authentication layer
//! answers an anonymous request to one of them with 401 at once, before any body is read or
//! buffered: a request that cannot succeed must not make the server hold its upload.

use std::collections::HashMap;

/// method → segment count → path templates; looked up by `&str` (no allocation per request).
type Templates = HashMap<String, HashMap<usize, Vec<Vec<String>>>>;

/// `(method, segment count)` → path templates of protected and of public operations.
#[derive(Debug, Default)]
pub struct ProtectedRoutes {
    protected: Templates,
    public: Templates,
}

fn fits(templates: &Templates, method: &str, path: &str) -> bool {
    let n = segments(path).count();
    templates.get(method).and_then(|by_len| by_len.get(&n)).is_some_and(|all| {
        all.iter().any(|t| t.iter().zip(segments(path)).all(|(t, s)| t == s || t.starts_with('{')))
    })
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl ProtectedRoutes {
    pub fn from_spec(spec: &str) -> Self {
        let (mut protected, mut public) = (Templates::new(), Templates::new());
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) else {
            return Self::default();
        };
        for (path, item) in paths {
            let Some(ops) = item.as_object() else { continue };
            for (method, op) in ops {
                // `{}` among the requirements would make the credential optional.
                let secured = op.get("security").and_then(|s| s.as_array()).is_some_and(|s| {
                    !s.is_empty() && s.iter().all(|req| req != &serde_json::json!({}))
                });
                let template: Vec<String> = segments(path).map(str::to_string).collect();
                let into = if secured { &mut protected } else { &mut public };
                into.entry(method.to_uppercase())
                    .or_default()
                    .entry(template.len())
                    .or_default()
                    .push(template);
            }
        }
        Self { protected, public }
    }

    /// Whether `method path` reaches an operation that needs a credential. Literal segments
    /// must match exactly, so a path that also fits a public operation is never claimed here
    /// unless every template it fits is protected.
    pub fn requires_credential(&self, method: &str, path: &str) -> bool {
        fits(&self.protected, method, path) && !fits(&self.public, method, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_operations_from_the_spec() {
        let spec = r#"{"paths": {
            "/api/projects/{id}/": {"get": {"operationId": "p", "security": [{"Token": []}]}},
            "/api/auth/login/": {"post": {"operationId": "login"}},
            "/api/import/": {"post": {"operationId": "i", "security": [{"Token": []}, {"bearerAuth": []}]}},
            "/api/open/": {"get": {"operationId": "o", "security": [{}]}},
            "/api/projects/stats/": {"get": {"operationId": "s"}}
        }}"#;
        let r = ProtectedRoutes::from_spec(spec);
        assert!(r.requires_credential("GET", "/api/projects/7/"));
        assert!(r.requires_credential("GET", "/api/projects/7"));
        assert!(r.requires_credential("POST", "/api/import"));
        assert!(!r.requires_credential("POST", "/api/projects/7/"));
        assert!(!r.requires_credential("POST", "/api/auth/login/"));
        assert!(!r.requires_credential("GET", "/api/open/"));
        assert!(!r.requires_credential("GET", "/api/projects/7/x"));
        assert!(!r.requires_credential("GET", "/nothing"));
        assert!(!r.requires_credential("GET", "/api/projects/stats"));
    }
}
