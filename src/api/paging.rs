//! DRF-style page-number paging: `count`, `next`, `previous` (absolute URLs), `results`.

use poem::Request;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::Object;

use crate::api::error::ApiError;
use crate::domain::{Error, ErrorCode};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 1000;
/// The deepest row a page may reach (`page × page_size`). Deeper pages are refused before any
/// search: an offset costs the search memory and time in proportion to its depth (tantivy's
/// top-k collector pre-allocates `offset + limit` slots), and no client pages 100 000 rows
/// deep — it filters. The index layer enforces the same bound on its own.
pub const MAX_DEPTH: u64 = crate::logs::index::MAX_WINDOW as u64;

/// One page of a list.
#[derive(Debug, Object)]
pub struct Page<T: ParseFromJSON + ToJSON + Send + Sync> {
    /// Total number of matching objects.
    pub count: u64,
    /// Absolute URL of the next page, or null.
    pub next: Option<String>,
    /// Absolute URL of the previous page, or null.
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// A validated `page` / `page_size` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u64,
    pub page_size: u64,
}

impl PageRequest {
    /// Validates the query values: `page` ≥ 1, 1 ≤ `page_size` ≤ 1000, and the page ends at most
    /// [`MAX_DEPTH`] rows deep (400 otherwise).
    pub fn new(page: Option<u64>, page_size: Option<u64>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page == 0 {
            return Err(Error::invalid("page", "A page number must be 1 or more.").into());
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "page_size",
                format!("Must be between 1 and {MAX_PAGE_SIZE}."),
            )
            .into());
        }
        if page.saturating_mul(page_size) > MAX_DEPTH {
            return Err(Error::invalid(
                "page",
                format!("Pages end at most {MAX_DEPTH} rows deep; narrow the filters instead."),
            )
            .into());
        }
        Ok(Self { page, page_size })
    }

    /// Bounded by [`MAX_DEPTH`] (checked in [`PageRequest::new`]).
    pub fn offset(&self) -> usize {
        usize::try_from((self.page - 1).saturating_mul(self.page_size)).unwrap_or(usize::MAX)
    }

    pub fn limit(&self) -> usize {
        usize::try_from(self.page_size).unwrap_or(usize::MAX)
    }

    /// 404 "Invalid page." when the page is past the end (page 1 of an empty list is fine).
    pub fn check_in_range(&self, total: u64) -> Result<(), ApiError> {
        if self.page > 1 && (self.page - 1).saturating_mul(self.page_size) >= total {
            return Err(Error::new(ErrorCode::NotFound, "Invalid page.").into());
        }
        Ok(())
    }

    /// Takes this page out of a full, ordered list.
    pub fn slice<T>(&self, all: Vec<T>) -> Vec<T> {
        all.into_iter().skip(self.offset()).take(self.limit()).collect()
    }

    /// Builds the page, with links built from the request's scheme, host, path and query.
    pub fn build<T: ParseFromJSON + ToJSON + Send + Sync>(
        &self,
        req: &Request,
        total: u64,
        results: Vec<T>,
    ) -> Result<Page<T>, ApiError> {
        let (next, previous) = self.links(req, total)?;
        Ok(Page { count: total, next, previous, results })
    }

    /// `next` and `previous` of this page of `total` items (404 past the last page).
    pub fn links(
        &self,
        req: &Request,
        total: u64,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        self.check_in_range(total)?;
        let has_next = self.page.saturating_mul(self.page_size) < total;
        let next = has_next.then(|| page_url(req, Some(self.page + 1)));
        let previous =
            (self.page > 1).then(|| page_url(req, (self.page > 2).then_some(self.page - 1)));
        Ok((next, previous))
    }
}

/// The request's own absolute URL with `page` replaced (or removed for page 1, as DRF does).
pub fn page_url(req: &Request, page: Option<u64>) -> String {
    let uri = req.original_uri();
    build_page_url(&absolute_base(req), uri.path(), uri.query(), page)
}

fn build_page_url(base: &str, path: &str, query: Option<&str>, page: Option<u64>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), v.to_string())
                })
                .filter(|(k, _)| k != "page")
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = page {
        pairs.push(("page".into(), p.to_string()));
    }
    let query: Vec<String> =
        pairs.into_iter().map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") }).collect();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", query.join("&"))
    }
}

/// `https://host[:port]` from the request (the Host header, or the HTTP/2 authority).
pub fn absolute_base(req: &Request) -> String {
    let scheme = if *req.scheme() == poem::http::uri::Scheme::HTTP { "http" } else { "https" };
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plausible_host(h))
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

fn is_plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_values() {
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(None, Some(0)).is_err());
        assert!(PageRequest::new(None, Some(1001)).is_err());
        let p = PageRequest::new(Some(3), Some(10)).unwrap();
        assert_eq!((p.offset(), p.limit()), (20, 10));
    }

    #[test]
    fn deep_pages_are_refused_with_saturating_arithmetic() {
        assert!(PageRequest::new(Some(100), Some(1000)).is_ok());
        assert!(PageRequest::new(Some(5000), None).is_ok());
        for (page, size) in [(101, 1000), (5001, 20), (10_000_000_000, 1000), (u64::MAX, 1000)] {
            let err = PageRequest::new(Some(page), Some(size)).unwrap_err();
            assert_eq!(err.0.code, ErrorCode::Invalid);
            assert!(err.0.details.unwrap().get("page").is_some());
        }
        assert!(PageRequest::new(Some(u64::MAX), Some(1)).is_err());
    }

    #[test]
    fn past_the_end_is_404_but_empty_first_page_is_fine() {
        assert!(PageRequest::new(Some(1), None).unwrap().check_in_range(0).is_ok());
        assert!(PageRequest::new(Some(2), Some(10)).unwrap().check_in_range(10).is_err());
        assert!(PageRequest::new(Some(2), Some(10)).unwrap().check_in_range(11).is_ok());
    }

    #[test]
    fn links_are_absolute_and_keep_other_params() {
        let base = "https://example.com:8443";
        let q = Some("search=web&page=2");
        assert_eq!(
            build_page_url(base, "/api/projects/", q, Some(3)),
            "https://example.com:8443/api/projects/?search=web&page=3"
        );
        assert_eq!(
            build_page_url(base, "/api/projects/", q, None),
            "https://example.com:8443/api/projects/?search=web"
        );
        assert_eq!(
            build_page_url(base, "/api/x/", None, Some(2)),
            "https://example.com:8443/api/x/?page=2"
        );
    }
}
