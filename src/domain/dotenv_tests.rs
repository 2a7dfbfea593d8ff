//! Tests for `.env` import/export, including read-back by dotenvy,
//! python-dotenv and bash (the last two only when installed).

// Unwrap, indexing and panics are how tests fail (STYLE.md §11 allows them in
// tests); the crate's lints deny them for library code only in spirit.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_vars() -> Vec<(String, String)> {
    tricky_values().into_iter().enumerate().map(|(i, v)| (format!("V{i:03}"), v)).collect()
}

fn header() -> Vec<String> {
    vec![
        "Exported from Gatehouse".to_string(),
        // Header text comes from user-named projects: it must stay a comment.
        "project: demo\nEVIL=1\r\nenvironment: prod\rX=2".to_string(),
    ]
}

/// Text before (and including) the value's last line break.
fn before_last_break(v: &str) -> &str {
    match v.rfind(['\n', '\r']) {
        Some(i) => &v[..=i],
        None => "",
    }
}

/// python-dotenv (interpolation off) reads these exactly; it must skip the
/// others (see the module docs for why each class is impossible).
fn python_reads_exactly(v: &str) -> bool {
    let quote_or_pair = v.contains('\'') || v.contains("\\\\");
    let shell_special = v.contains('$') || v.contains('`');
    !(v.contains('\r') || v.ends_with('\\') || (quote_or_pair && shell_special))
}

/// python-dotenv's `${NAME}` / `${NAME:-default}` pattern occurs in `v`.
fn python_interpolates(v: &str) -> bool {
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        let name_end = rest.find(['}', ':']);
        match name_end.map(|e| (e, &rest[e..])) {
            Some((_, tail)) if tail.starts_with('}') => return true,
            Some((_, tail)) if tail.starts_with(":-") && tail.contains('}') => return true,
            _ => {}
        }
    }
    false
}

/// dotenvy reads all values except those with both `'` and a backtick before
/// the last line break (see the module docs).
fn dotenvy_reads_exactly(v: &str) -> bool {
    let prefix = before_last_break(v);
    !(prefix.contains('\'') && prefix.contains('`'))
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-dotenv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn split_nul_pairs(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        out.push((String::from_utf8(k.to_vec()).unwrap(), v.to_vec()));
    }
    out
}

fn show(v: &str) -> String {
    let s = format!("{v:?}");
    if s.chars().count() > 80 {
        s.chars().take(77).chain("...".chars()).collect()
    } else {
        s
    }
}

// ---------------------------------------------------------------- export

#[test]
fn corpus_covers_the_required_classes() {
    let values = tricky_values();
    assert!(values.len() >= 30);
    for needle in
        [" ", "#", " # ", "'", "\"", "=", "$HOME", "${", "\\", "`", "\\n", "\n", "\r\n", "\t", "🦀"]
    {
        assert!(values.iter().any(|v| v.contains(needle)), "{needle:?}");
    }
    assert!(values.iter().any(String::is_empty));
    assert!(values.iter().any(|v| v.len() == MAX_VALUE_BYTES));
    assert!(values.iter().any(|v| v.ends_with('\\')));
    assert!(values.iter().any(|v| v.contains("PRIVATE KEY")));
    assert!(values.iter().any(|v| !v.is_empty() && v.trim().is_empty()));
    assert!(values.iter().all(|v| !v.contains('\0')));
}

#[test]
fn write_env_then_parse_is_exact_for_the_corpus() {
    let vars = corpus_vars();
    let text = write_env(&header(), &vars);
    let outcome = parse(&text);
    assert_eq!(outcome.errors, vec![]);
    let got: Vec<(String, String)> =
        outcome.entries.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(got, vars);
}

#[test]
fn each_encoded_value_parses_back_alone() {
    for v in tricky_values() {
        let enc = encode_value(&v);
        let outcome = parse(&format!("K={enc}\nNEXT=1\n"));
        assert_eq!(outcome.errors, vec![], "{}", show(&v));
        assert_eq!(outcome.entries.len(), 2, "{}", show(&v));
        assert_eq!(outcome.entries[0].value, v, "{}", show(&enc));
        assert_eq!(outcome.entries[1].line, 2 + enc.matches('\n').count());
    }
}

#[test]
fn encoding_forms() {
    let cases: &[(&str, &str)] = &[
        ("", ""),
        ("plain-1.2_x:y@z%+,=", "plain-1.2_x:y@z%+,="),
        ("with spaces", "'with spaces'"),
        ("$HOME `x` \"q\" #", "'$HOME `x` \"q\" #'"),
        ("multi\nline", "'multi\nline'"),
        ("it's", "\"it's\""),
        ("a\\\\b", "\"a\\\\\\\\b\""),
        ("say \"hi\" it's", "\"say \\\"hi\\\" it's\""),
        // No form all parsers read: python-dotenv is made to reject.
        ("x\\", "\"x\\\\\"\"\""),
        ("cr\r", "'cr\r'\"\""),
        ("a\\\\$b", "'a\\\\$b'\"\""),
        ("it's $5", "\"it's \\$5\"\"\""),
        ("it's `x`", "\"it's \"'`'\"x\"'`'\"\""),
        ("`a`\nit's", "'`a`\n'\"it's\"\"\""),
        ("it's\n`x`\n", "\"it's\n\\`x\\`\n\"\"\""),
    ];
    for (value, want) in cases {
        assert_eq!(encode_value(value), *want, "{}", show(value));
    }
}

#[test]
fn write_env_layout() {
    let vars = vec![
        ("B".to_string(), "2".to_string()),
        ("A".to_string(), "one two".to_string()),
        ("bad-name".to_string(), "x".to_string()),
        ("NUL".to_string(), "a\0b".to_string()),
    ];
    let text = write_env(&["Gatehouse export".to_string(), "line\nEVIL=1".to_string()], &vars);
    assert_eq!(
        text,
        "# Gatehouse export\n# line\n# EVIL=1\n\nA='one two'\nB=2\n\
         # NUL skipped: its value contains a NUL byte, which no environment variable can hold\n\
         # skipped a variable whose name is not a valid .env name\n"
    );
    assert_eq!(write_env(&[], &[]), "");
    assert_eq!(write_env(&[], &[("K".into(), "v".into())]), "K=v\n");
    assert_eq!(write_env(&["h".into()], &[]), "# h\n\n");
    let outcome = parse(&text);
    assert_eq!(outcome.errors, vec![]);
    assert_eq!(outcome.entries.len(), 2);
}

/// Reads `vars` written by `write_env` back with dotenvy and checks each is
/// exact or (only for the documented class) rejected; returns the rejected.
fn check_dotenvy(vars: &[(String, String)]) -> Vec<String> {
    let text = write_env(&header(), vars);
    let mut got = HashMap::new();
    let mut errors = 0;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => {
                got.insert(k, v);
            }
            Err(_) => errors += 1,
        }
    }
    let mut rejected = Vec::new();
    for (k, v) in vars {
        if dotenvy_reads_exactly(v) {
            assert_eq!(got.get(k), Some(v), "dotenvy misread {k} = {}", show(v));
        } else {
            assert_eq!(got.get(k), None, "{k}");
            rejected.push(show(v));
        }
    }
    assert_eq!(got.len(), vars.len() - rejected.len(), "no extra keys");
    assert_eq!(errors, rejected.len());
    rejected
}

#[test]
fn dotenvy_reads_the_corpus() {
    let rejected = check_dotenvy(&corpus_vars());
    assert_eq!(rejected.len(), 1);
    println!("dotenvy rejects (documented): {rejected:?}");
}

/// Runs python-dotenv's `dotenv_values` on `path`; `None` when unavailable.
fn python_dotenv(
    path: &Path,
    interpolate: bool,
) -> Option<(HashMap<String, Option<String>>, String)> {
    const SCRIPT: &str = r#"
import sys
from dotenv import dotenv_values
d = dotenv_values(sys.argv[1], interpolate=sys.argv[2] == "1")
out = sys.stdout.buffer
for k, v in d.items():
    out.write(k.encode() + b"\0" + (b"\1" if v is None else b"\2" + v.encode()) + b"\0")
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .arg(if interpolate { "1" } else { "0" })
        .output()
        .ok()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("ModuleNotFoundError") {
            return None;
        }
        panic!("python-dotenv failed: {stderr}");
    }
    let map = split_nul_pairs(&output.stdout)
        .into_iter()
        .map(|(k, v)| {
            let v = match v.split_first() {
                Some((2, rest)) => Some(String::from_utf8(rest.to_vec()).unwrap()),
                _ => None,
            };
            (k, v)
        })
        .collect();
    Some((map, String::from_utf8_lossy(&output.stderr).into_owned()))
}

/// What python-dotenv did with a file: values it rejected and values it
/// interpolated (both as shown), or `None` when it is not installed.
type PythonReport = Option<(Vec<String>, Vec<String>)>;

/// Reads `vars` written by `write_env` back with python-dotenv and checks
/// each is exact, rejected (documented classes) or interpolated (only with
/// `interpolate`), and that no other key appears.
fn check_python(name: &str, vars: &[(String, String)], interpolate: bool) -> PythonReport {
    let dir = scratch_dir(name);
    let path = dir.join("export.env");
    std::fs::write(&path, write_env(&header(), vars)).unwrap();
    let result = python_dotenv(&path, interpolate);
    let _ = std::fs::remove_dir_all(&dir);
    let Some((got, warnings)) = result else {
        println!("SKIP: python3 with python-dotenv not available (pip install python-dotenv)");
        return None;
    };
    let mut rejected = Vec::new();
    let mut interpolated = Vec::new();
    for (k, v) in vars {
        if !python_reads_exactly(v) {
            assert_eq!(got.get(k), None, "python-dotenv should reject {k} = {}", show(v));
            rejected.push(show(v));
        } else if interpolate && python_interpolates(v) {
            assert!(got.contains_key(k), "{k}");
            interpolated.push(show(v));
        } else {
            assert_eq!(
                got.get(k),
                Some(&Some(v.clone())),
                "python-dotenv misread {k} = {}",
                show(v)
            );
        }
    }
    assert_eq!(got.len(), vars.len() - rejected.len(), "no extra keys: {got:?}");
    assert_eq!(warnings.matches("could not parse").count(), rejected.len());
    Some((rejected, interpolated))
}

#[test]
fn python_dotenv_reads_the_corpus() {
    let vars = corpus_vars();
    let Some((rejected, _)) = check_python("python", &vars, false) else {
        return;
    };
    println!("python-dotenv rejects (documented): {rejected:?}");
    if let Some((_, interpolated)) = check_python("python-interp", &vars, true) {
        assert_eq!(interpolated.len(), 2);
        println!("python-dotenv interpolates (documented): {interpolated:?}");
    }
}

/// Sources `vars` written by `write_env` in bash and checks every value is
/// exact, nothing else is set and no command ran; false when bash is absent.
fn check_bash(name: &str, vars: &[(String, String)]) -> bool {
    const SCRIPT: &str = r#"set -a
. "$1"
shift
for k in "$@"; do
  if [[ -v $k ]]; then printf '%s\0%s\0' "$k" "${!k}"; fi
done
"#;
    let dir = scratch_dir(name);
    let path = dir.join("export.env");
    std::fs::write(&path, write_env(&header(), vars)).unwrap();
    let mut keys: Vec<String> = vars.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(["EVIL", "X"].map(String::from));
    let output = Command::new("env")
        .args(["-i", "PATH=/usr/bin:/bin", "bash", "-c", SCRIPT, "bash"])
        .arg(&path)
        .args(&keys)
        .current_dir(&dir)
        .output();
    let pwned = dir.join("gatehouse-dotenv-pwned").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let output = match output {
        Ok(o) if o.status.success() || !o.stderr.is_empty() => o,
        _ => {
            println!("SKIP: bash not available");
            return false;
        }
    };
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(output.status.success());
    assert!(!pwned, "sourcing the export ran a command");
    let got: HashMap<String, Vec<u8>> = split_nul_pairs(&output.stdout).into_iter().collect();
    for (k, v) in vars {
        assert_eq!(
            got.get(k).map(|b| String::from_utf8_lossy(b).into_owned()),
            Some(v.clone()),
            "bash misread {k} = {}",
            show(v)
        );
    }
    assert_eq!(got.len(), vars.len(), "no extra keys");
    true
}

#[test]
fn bash_reads_the_corpus() {
    check_bash("bash", &corpus_vars());
}

/// Random short values over the characters that matter, all in one file:
/// every reader must read each exactly or, for the documented classes,
/// reject it without disturbing any other variable.
#[test]
fn random_values_read_back_by_every_parser() {
    const ALPHABET: &[char] = &[
        '\'', '"', '\\', '$', '`', '\n', '\r', '\t', ' ', '#', '{', '}', ':', '-', '=', 'a', 'é',
        '\u{85}', '(', ')', '\\', '#', '\'', '"', '`', '$', ' ', '\n',
    ];
    let mut rng = XorShift(7);
    let mut vars = Vec::new();
    for i in 0..2000 {
        let len = rng.below(24);
        let v: String = (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
        vars.push((format!("R{i:04}"), v));
    }
    let outcome = parse(&write_env(&header(), &vars));
    assert_eq!(outcome.errors, vec![]);
    let got: Vec<(String, String)> =
        outcome.entries.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(got, vars);
    let rejected = check_dotenvy(&vars);
    println!("dotenvy rejected {} of {}", rejected.len(), vars.len());
    if let Some((rejected, _)) = check_python("python-random", &vars, false) {
        println!("python-dotenv rejected {} of {}", rejected.len(), vars.len());
    }
    check_bash("bash-random", &vars);
}

/// Prints the encoding of every corpus value (`cargo test -- --nocapture`).
#[test]
fn print_encodings() {
    for v in tricky_values() {
        if v.len() < 200 {
            println!("{:<60} -> {}", show(&v), show(&encode_value(&v)));
        }
    }
}

// ---------------------------------------------------------------- import

fn entries(outcome: &ParseOutcome) -> Vec<(usize, &str, &str)> {
    outcome.entries.iter().map(|e| (e.line, e.key.as_str(), e.value.as_str())).collect()
}

#[test]
fn parses_the_common_forms() {
    let input = "# comment\n\
                 \n\
                 export A=1\n\
                 B = two words # comment\n\
                 \u{20}  C='single # not a comment'\n\
                 D=\"multi\n\
                 line\"  # trailing comment\n\
                 E=unquoted#hash\n\
                 F= #only a comment\n\
                 G=\n\
                 H=   \n\
                 I=#starts\n\
                 J=a\t# tab comment\n\
                 export\tK=tab\n\
                 export=is-a-key\n\
                 export =also\n\
                 L=\"a\\\\b\\\"c\\nd\\te\\rf\\$g\\`h\\'i\\qj\"\n\
                 M='a\\\\b\\n'\n\
                 N='a'\"b\"'c'\n\
                 O='x'#c\n\
                 P=a=b\n";
    let outcome = parse(input);
    assert_eq!(outcome.errors, vec![]);
    assert_eq!(
        entries(&outcome),
        vec![
            (3, "A", "1"),
            (4, "B", "two words"),
            (5, "C", "single # not a comment"),
            (6, "D", "multi\nline"),
            (8, "E", "unquoted#hash"),
            (9, "F", ""),
            (10, "G", ""),
            (11, "H", ""),
            (12, "I", "#starts"),
            (13, "J", "a"),
            (14, "K", "tab"),
            (16, "export", "also"),
            (17, "L", "a\\b\"c\nd\te\rf$g`h'i\\qj"),
            (18, "M", "a\\\\b\\n"),
            (19, "N", "abc"),
            (20, "O", "x"),
            (21, "P", "a=b"),
        ]
    );
}

#[test]
fn later_duplicates_win_in_first_appearance_order() {
    let outcome = parse("A=1\nB=2\nA=3\nC=4\nB='5'\n");
    assert_eq!(entries(&outcome), vec![(3, "A", "3"), (5, "B", "5"), (4, "C", "4")]);
}

#[test]
fn reports_each_error_kind_with_its_line() {
    let input = [
        "GOOD=1".to_string(),
        "no equals here".to_string(),
        "1BAD=x".to_string(),
        "BAD-NAME=secretvalue".to_string(),
        "=secretvalue".to_string(),
        "K=\"secretvalue\" trailing".to_string(),
        "NUL=secret\0value".to_string(),
        format!("{}=x", "A".repeat(MAX_KEY_LEN + 1)),
        format!("LONG={}", "s".repeat(MAX_VALUE_BYTES + 1)),
        "export".to_string(),
        "IT='it's'".to_string(),
        format!("OK_LONG={}", "s".repeat(MAX_VALUE_BYTES)),
        "AFTER=ok".to_string(),
        "Q=\"secretvalue never closed".to_string(),
        "LOST=1".to_string(),
        "ALSO_LOST='x'".to_string(),
    ]
    .join("\n");
    let outcome = parse(&input);
    let lines: Vec<usize> = outcome.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14]);
    let keys: Vec<Option<&str>> = outcome.errors.iter().map(|e| e.key.as_deref()).collect();
    assert_eq!(keys[0], None);
    assert_eq!(keys[1], Some("1BAD"));
    assert_eq!(keys[2], Some("BAD-NAME"));
    assert_eq!(keys[3], Some(""));
    assert_eq!(keys[4], Some("K"));
    assert_eq!(keys[5], Some("NUL"));
    assert_eq!(keys[6].map(str::len), Some(MAX_KEY_LEN));
    assert_eq!(keys[7], Some("LONG"));
    assert_eq!(keys[10], Some("Q"));
    let messages: Vec<&str> = outcome.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(messages[0], "missing '='");
    assert!(messages[1].starts_with("invalid variable name"));
    assert!(messages[3].contains("missing variable name"));
    assert!(messages[4].contains("after the closing quote"));
    assert!(messages[5].contains("NUL"));
    assert!(messages[6].contains("longer than 256"));
    assert!(messages[7].contains("longer than 65536 bytes"));
    assert_eq!(messages[8], "missing '='");
    assert!(messages[9].contains("after the closing quote"));
    assert!(messages[10].contains("unterminated double-quoted"));
    assert!(messages[10].contains("lines 14-16"));
    for m in &messages {
        assert!(!m.contains("secret") && !m.contains("sss"), "{m}");
    }
    assert_eq!(
        entries(&outcome).iter().map(|(l, k, _)| (*l, *k)).collect::<Vec<_>>(),
        vec![(1, "GOOD"), (12, "OK_LONG"), (13, "AFTER")]
    );
}

#[test]
fn unterminated_single_quote_on_the_last_line() {
    let outcome = parse("A=1\nB='open");
    assert_eq!(entries(&outcome), vec![(1, "A", "1")]);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].line, 2);
    assert!(outcome.errors[0].error.contains("single-quoted"));
    assert!(outcome.errors[0].error.contains("line 2 was"));
    let outcome = parse("A=\"ends with backslash\\");
    assert_eq!(outcome.errors.len(), 1);
}

#[test]
fn invalid_key_with_multiline_value_is_one_error() {
    let outcome = parse("BAD-KEY=\"one\ntwo\nthree\"\nOK=1\n");
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].line, 1);
    assert_eq!(entries(&outcome), vec![(4, "OK", "1")]);
}

#[test]
fn crlf_files() {
    let outcome =
        parse("# c\r\nA=1\r\nB='x' \r\nC=\"multi\r\nline\"\r\nD=plain \r\n\r\nexport E=e\r\n");
    assert_eq!(outcome.errors, vec![]);
    assert_eq!(
        entries(&outcome),
        vec![
            (2, "A", "1"),
            (3, "B", "x"),
            (4, "C", "multi\nline"),
            (6, "D", "plain"),
            (8, "E", "e"),
        ]
    );
    // A file with bare LF line ends keeps CRs that are inside quotes.
    let outcome = parse("C='multi\r\nline'\nD=x\n");
    assert_eq!(outcome.entries[0].value, "multi\r\nline");
}

#[test]
fn bom_is_ignored() {
    let outcome = parse("\u{feff}A=1\n");
    assert_eq!(entries(&outcome), vec![(1, "A", "1")]);
}

#[test]
fn is_valid_key_rules() {
    assert!(is_valid_key("A"));
    assert!(is_valid_key("_"));
    assert!(is_valid_key("a_B9"));
    assert!(is_valid_key(&"K".repeat(MAX_KEY_LEN)));
    assert!(!is_valid_key(&"K".repeat(MAX_KEY_LEN + 1)));
    assert!(!is_valid_key(""));
    assert!(!is_valid_key("9A"));
    assert!(!is_valid_key("A-B"));
    assert!(!is_valid_key("A.B"));
    assert!(!is_valid_key("É"));
    assert!(!is_valid_key("A B"));
}

#[test]
fn error_list_is_capped() {
    let input = "x\n".repeat(5000);
    let outcome = parse(&input);
    assert_eq!(outcome.errors.len(), MAX_LISTED_ERRORS + 1);
    let last = outcome.errors.last().unwrap();
    assert_eq!(last.line, MAX_LISTED_ERRORS + 1);
    assert!(last.error.starts_with("4000 more lines"));
}

// ---------------------------------------------------------------- robustness

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

fn random_input(rng: &mut XorShift, len: usize) -> String {
    // Biased towards the characters the parser cares about.
    const INTERESTING: &[u8] = b"=#'\"\\\n\r\t $`exportAB_1";
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            let r = rng.next();
            if r.is_multiple_of(3) {
                (r >> 8).to_le_bytes()[0]
            } else {
                INTERESTING[rng.below(INTERESTING.len())]
            }
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check_invariants(input: &str, outcome: &ParseOutcome) {
    let lines = input.matches('\n').count() + 1;
    for e in &outcome.entries {
        assert!(is_valid_key(&e.key));
        assert!(e.value.len() <= MAX_VALUE_BYTES && !e.value.contains('\0'));
        assert!(e.line >= 1 && e.line <= lines);
    }
    for e in &outcome.errors {
        assert!(e.line >= 1 && e.line <= lines);
    }
}

#[test]
fn random_bytes_never_panic_and_what_parses_round_trips() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let len = rng.below(600);
        let input = random_input(&mut rng, len);
        let outcome = parse(&input);
        check_invariants(&input, &outcome);
        let vars: Vec<(String, String)> =
            outcome.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let again = parse(&write_env(std::slice::from_ref(&input), &vars));
        assert_eq!(again.errors, vec![], "round {round}");
        let mut sorted = vars.clone();
        sorted.sort();
        let got: Vec<(String, String)> =
            again.entries.into_iter().map(|e| (e.key, e.value)).collect();
        assert_eq!(got, sorted, "round {round}");
    }
}

#[test]
fn ten_megabyte_inputs() {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let mut rng = XorShift(42);
    let inputs = [
        random_input(&mut rng, TEN_MB),
        "x\n".repeat(TEN_MB / 2),
        format!("K={}", "a".repeat(TEN_MB)),
        format!("K=\"{}", "a\n".repeat(TEN_MB / 2)),
        format!("K='{}'", "\\".repeat(TEN_MB)),
        "'\"".repeat(TEN_MB / 2),
        (0..TEN_MB / 16).fold(String::new(), |mut s, i| {
            writeln!(s, "K{i:07}=value").unwrap();
            s
        }),
    ];
    for input in &inputs {
        let started = std::time::Instant::now();
        let outcome = parse(input);
        check_invariants(input, &outcome);
        assert!(outcome.errors.len() <= MAX_LISTED_ERRORS + 1);
        println!(
            "{} bytes: {} entries, {} errors in {:?}",
            input.len(),
            outcome.entries.len(),
            outcome.errors.len(),
            started.elapsed()
        );
    }
}
