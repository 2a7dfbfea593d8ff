//! What the registry reads out of a proto file: it must parse as proto2 or proto3 (with
//! protox-parse, a real parser), and the list shows its package and how many messages and
//! services it declares. A file that does not parse is refused with the parser's line, column
//! and message.

use prost_types::DescriptorProto;

use crate::domain::Error;

/// The facts the list shows about a file, read once at upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Empty when the file declares none.
    pub package: String,
    /// Every message, nested ones included (map entries are the parser's, not the author's).
    pub messages_count: u64,
    pub services_count: u64,
}

/// Parses `text` as `filename` and summarises it, or a 400 naming the line.
pub fn summarize(filename: &str, text: &str) -> Result<Summary, Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid("body", "The proto file is empty."));
    }
    let file = protox_parse::parse(filename, text).map_err(|e| {
        let (line, column) = e.span().map_or_else(|| end_of(text), |s| line_column(text, s.start));
        Error::invalid("body", format!("line {line}, column {column}: {e}"))
    })?;
    Ok(Summary {
        package: file.package.unwrap_or_default(),
        messages_count: file.message_type.iter().map(count_messages).sum(),
        services_count: file.service.len() as u64,
    })
}

/// A message and the messages declared inside it, at any depth. Map fields compile to a
/// synthetic nested `…Entry` message that nobody wrote, so those are not counted.
fn count_messages(m: &DescriptorProto) -> u64 {
    let is_map_entry = m.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false);
    if is_map_entry {
        return 0;
    }
    1 + m.nested_type.iter().map(count_messages).sum::<u64>()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Where an error without a span (unexpected end of file) sits: after the last character.
fn end_of(text: &str) -> (usize, usize) {
    line_column(text, text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_messages_but_not_map_entries() {
        let text = r#"
            syntax = "proto3";
            package api.crypto;
            message Coin { message Price { message Quote { string v = 1; } } map<string, int64> m = 2; }
            message Wallet { Coin coin = 1; }
            service CryptoService { rpc Get(Coin) returns (Wallet); }
            service Other { }
        "#;
        let s = summarize("crypto.proto", text).unwrap();
        assert_eq!(s.package, "api.crypto");
        assert_eq!(s.messages_count, 4);
        assert_eq!(s.services_count, 2);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let text = "syntax = \"proto3\";\n\nmessage A {\n  string name = 1\n}\n";
        let e = summarize("a.proto", text).unwrap_err();
        let details = e.details.unwrap().to_string();
        assert!(details.contains("line 5, column 1"), "{details}");
        let e = summarize("a.proto", "syntax = \"proto3\";\nmessage A {").unwrap_err();
        assert!(e.details.unwrap().to_string().contains("line 2"));
        assert!(summarize("a.proto", " \n ").is_err());
        assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
    }
}
