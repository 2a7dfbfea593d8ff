//! Query parameters of the monitoring views, parsed once for the OpenAPI operations and the
//! `/cfg/grpc/monitor/…` aliases alike: `hours` (integer, clamped to 1–720), dates, filters.

use std::collections::HashMap;

use crate::api::error::ApiError;
use crate::domain::Error;
use crate::logs::record::STATUSES;
use crate::logs::stats::MAX_HOURS;
use crate::logs::RequestFilter;

/// django-cfg's lists (monitor requests, staff API keys) answer 100 rows a page unless
/// `page_size` says otherwise (its `DefaultPagination`; max 1000 as everywhere here), so a
/// script reading `results` once sees a normal install's keys. KeyNest's lists keep 20.
pub const CFG_PAGE_SIZE: u64 = 100;

/// Every parameter any monitoring view takes.
#[derive(Debug, Default, Clone)]
pub struct MonitorParams {
    pub service: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
    pub user_id: Option<u64>,
    pub api_key_id: Option<u64>,
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub hours: Option<i64>,
    pub search: Option<String>,
    pub interval: Option<String>,
    pub page: Option<u64>,
    pub page_size: Option<u64>,
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn int<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match non_empty(q.get(name)) {
        None => Ok(None),
        Some(v) => v
            .parse::<T>()
            .map(Some)
            .map_err(|_| Error::invalid(name, "A valid integer is required.").into()),
    }
}

impl MonitorParams {
    /// From a raw query map (the aliases, which are plain poem routes).
    pub fn from_map(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        Ok(Self {
            service: non_empty(q.get("service")),
            method: non_empty(q.get("method")),
            status: non_empty(q.get("status")),
            user_id: int(q, "user_id")?,
            api_key_id: int(q, "api_key_id")?,
            date_from: non_empty(q.get("date_from")),
            date_to: non_empty(q.get("date_to")),
            hours: int(q, "hours")?,
            search: non_empty(q.get("search")),
            interval: non_empty(q.get("interval")),
            page: int(q, "page")?,
            page_size: int(q, "page_size")?,
        })
    }

    /// `hours`, default 24, clamped to 1–720.
    pub fn hours(&self) -> u64 {
        let h = self.hours.unwrap_or(24).clamp(1, i64::try_from(MAX_HOURS).unwrap_or(720));
        u64::try_from(h).unwrap_or(24)
    }

    /// The request-list filter; `date_from`/`date_to` win over `hours`.
    pub fn request_filter(&self, now: i64) -> Result<RequestFilter, ApiError> {
        if let Some(s) = &self.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(Error::invalid(
                    "status",
                    format!("Must be one of: {}.", STATUSES.join(", ")),
                )
                .into());
            }
        }
        let mut from = parse_date(self.date_from.as_deref(), "date_from", false)?;
        let to = parse_date(self.date_to.as_deref(), "date_to", true)?;
        if from.is_none() && to.is_none() && self.hours.is_some() {
            from = Some(crate::logs::rollups::window_start(now, self.hours()));
        }
        Ok(RequestFilter {
            service: self.service.clone(),
            method: self.method.clone(),
            status: self.status.clone(),
            user_id: self.user_id,
            api_key_id: self.api_key_id,
            from,
            to,
            search: self.search.clone(),
        })
    }
}

/// `YYYY-MM-DD` (the whole UTC day: its start for `from`, its last second for `to`) or an RFC
/// 3339 time; anything else is a 400 on `field`.
pub fn parse_date(v: Option<&str>, field: &str, end_of_day: bool) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(v, &day) {
        let start = d.midnight().assume_utc().unix_timestamp();
        return Ok(Some(if end_of_day { start + 86399 } else { start }));
    }
    if let Ok(t) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(t.unix_timestamp()));
    }
    Err(Error::invalid(field, "Enter a date as YYYY-MM-DD.").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_clamped_and_must_be_integers() {
        let mut q = HashMap::new();
        q.insert("hours".to_string(), "abc".to_string());
        assert!(MonitorParams::from_map(&q).is_err());
        q.insert("hours".to_string(), "1.5".to_string());
        assert!(MonitorParams::from_map(&q).is_err());
        q.insert("hours".to_string(), "100000".to_string());
        assert_eq!(MonitorParams::from_map(&q).unwrap().hours(), 720);
        q.insert("hours".to_string(), "-3".to_string());
        assert_eq!(MonitorParams::from_map(&q).unwrap().hours(), 1);
        assert_eq!(MonitorParams::default().hours(), 24);
    }

    #[test]
    fn dates_are_inclusive_utc_days() {
        assert_eq!(parse_date(Some("1970-01-02"), "d", false).unwrap(), Some(86400));
        assert_eq!(parse_date(Some("1970-01-02"), "d", true).unwrap(), Some(2 * 86400 - 1));
        assert_eq!(parse_date(Some("1970-01-01T00:01:00Z"), "d", false).unwrap(), Some(60));
        assert!(parse_date(Some("yesterday"), "d", false).is_err());
        assert_eq!(parse_date(None, "d", false).unwrap(), None);
    }
}
