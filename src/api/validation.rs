//! Turning poem-openapi's payload parse messages into `{"field": ["message"]}` details.

/// Extracts `(field, message)` from a poem-openapi parse message when it names a field.
pub fn field_of(reason: &str) -> Option<(String, String)> {
    if let Some(field) = between(reason, "unknown field `", "`") {
        return Some((field.to_string(), "Unknown field.".to_string()));
    }
    if let Some(field) = between(reason, "properties `", "` is read only") {
        return Some((field.to_string(), "This field is read only.".to_string()));
    }
    None
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let rest = s.get(from..)?;
    let to = rest.find(end)?;
    rest.get(..to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unknown_and_read_only_fields() {
        assert_eq!(
            field_of("failed to parse \"X\": unknown field `colour`."),
            Some(("colour".into(), "Unknown field.".into()))
        );
        assert_eq!(
            field_of("failed to parse \"X\": properties `id` is read only."),
            Some(("id".into(), "This field is read only.".into()))
        );
        assert_eq!(field_of("expected value at line 1"), None);
    }
}
