//! `GET /api/schema/` content negotiation, as drf-spectacular's view does it for Pegasus
//! clients: `Accept: application/vnd.oai.openapi` (or `application/yaml`) gets YAML,
//! `application/vnd.oai.openapi+json` (or `application/json`) gets JSON, each under the media
//! type asked for. `?format=` wins over `Accept`; with neither, or with only types Gatehouse
//! does not serve (a browser's `text/html`), the answer stays JSON.

/// A representation of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// The media types served, in the order a tie is broken.
const SERVED: [(&str, Format); 5] = [
    ("application/vnd.oai.openapi+json", Format::Json),
    ("application/json", Format::Json),
    ("application/vnd.oai.openapi", Format::Yaml),
    ("application/yaml", Format::Yaml),
    ("application/x-yaml", Format::Yaml),
];

/// The format and `Content-Type` for an `Accept` header value: the served type with the
/// highest quality (the header's order among equals); JSON when nothing served is acceptable.
pub fn negotiate(accept: Option<&str>) -> (Format, &'static str) {
    const DEFAULT: (Format, &str) = (Format::Json, "application/json");
    let Some(accept) = accept else { return DEFAULT };
    let mut best: Option<(f32, (Format, &'static str))> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let served = SERVED.iter().find(|(m, _)| *m == media).map(|(m, f)| (*f, *m));
        let Some(choice) = served else { continue };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, choice));
        }
    }
    best.map_or(DEFAULT, |(_, choice)| choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pegasus_accept_values_choose_yaml_or_json_under_their_own_type() {
        assert_eq!(
            negotiate(Some("application/vnd.oai.openapi")),
            (Format::Yaml, "application/vnd.oai.openapi")
        );
        assert_eq!(
            negotiate(Some("application/vnd.oai.openapi+json")),
            (Format::Json, "application/vnd.oai.openapi+json")
        );
        assert_eq!(negotiate(Some("application/yaml")), (Format::Yaml, "application/yaml"));
        assert_eq!(negotiate(Some("Application/JSON; charset=utf-8")).0, Format::Json);
    }

    #[test]
    fn no_accept_a_browser_or_a_wildcard_stay_json() {
        for accept in [None, Some("*/*"), Some("text/html,application/xhtml+xml,*/*;q=0.8")] {
            assert_eq!(negotiate(accept), (Format::Json, "application/json"), "{accept:?}");
        }
    }

    #[test]
    fn quality_decides_and_zero_refuses() {
        let accept = "application/json;q=0.5, application/vnd.oai.openapi;q=0.9";
        assert_eq!(negotiate(Some(accept)).0, Format::Yaml);
        assert_eq!(
            negotiate(Some("application/vnd.oai.openapi;q=0, application/json")).0,
            Format::Json
        );
        // Equal quality: the header's order.
        assert_eq!(negotiate(Some("application/yaml, application/json")).0, Format::Yaml);
    }
}
