//! Property-based fuzzing on stable Rust (issue 16): the parsers that read what a client sends
//! (dotenv, proto files, `Authorization`, JWTs, paging parameters) and the template sandbox.
//! Properties: never panic, finish in bounded time, round-trip where a writer exists.
//!
//! `cargo test` runs [`BOUNDED_CASES`] cases per property (well under 30 s in a debug build on a
//! 2-vCPU machine); `PROPTEST_CASES` overrides it for a longer run (docs/testing.md):
//! `PROPTEST_CASES=20000 cargo test --test fuzz`.

// A failed assertion or unwrap is a failed test; the case count is read from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use proptest::prelude::*;

use gatehouse::api::error::{status_of, ApiError};
use gatehouse::api::paging::{self, PageRequest};
use gatehouse::auth::jwt::{Claims, JwtKeys};
use gatehouse::auth::{parse_authorization, Presented};
use gatehouse::crypto::SecretKey;
use gatehouse::domain::deployments::template::{Limits, RenderError, Renderer};
use gatehouse::domain::dotenv;
use gatehouse::domain::protos;
use gatehouse::domain::ErrorCode;

/// Far above what any single case takes even in a debug build on a loaded CI machine, far below
/// what a quadratic blow-up or a runaway loop would take: "bounded time" made checkable.
const TIME_BOUND: Duration = Duration::from_secs(5);

/// Cases per property in a plain `cargo test`: enough to reach the generators' corners on every
/// run, few enough that the whole file stays a small part of the test time.
const BOUNDED_CASES: u32 = 1024;

/// `PROPTEST_CASES` when set (the long run), otherwise [`BOUNDED_CASES`].
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = BOUNDED_CASES;
    }
    config
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < TIME_BOUND, "{what} took {took:?}");
    out
}

/// Characters that matter to the parsers (quotes, escapes, comment and line-break characters)
/// mixed with any Unicode scalar, so the generator reaches the interesting branches often.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            '\'', '"', '\\', '$', '`', '#', '=', ' ', '\t', '\n', '\r', '\u{feff}', '{', '}',
            '%', '\u{2028}', '\u{85}', 'e', 'x', 'p', 'o', 'r', 't', 'A', '_', '0', ':', '.',
        ]),
        1 => any::<char>(),
    ]
}

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Text shaped like a `.env` file: lines of `[export ]KEY=value`, comments and noise.
fn dotenv_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        ("(export )?[A-Za-z_][A-Za-z0-9_]{0,8}", "[ ]?=[ ]?", tricky_string(24))
            .prop_map(|(k, eq, v)| format!("{k}{eq}{v}")),
        tricky_string(24).prop_map(|c| format!("# {c}")),
        tricky_string(24),
    ];
    (prop::collection::vec(line, 0..12), prop::bool::ANY)
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_dotenv_parse_never_panics(input in prop_oneof![dotenv_like(), tricky_string(256)]) {
        let out = timed("dotenv::parse", || dotenv::parse(&input));
        let lines = input.split('\n').count();
        for e in &out.entries {
            prop_assert!(dotenv::is_valid_key(&e.key), "{:?}", e.key);
            prop_assert!(!e.value.contains('\0'));
            prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}", e.line, lines);
        }
        for e in &out.errors {
            prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}", e.line, lines);
        }
        let mut keys: Vec<&str> = out.entries.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        prop_assert_eq!(keys.len(), out.entries.len(), "one entry per key");
    }

    /// What the export writes, the import reads back exactly: same keys, same values, no errors.
    #[test]
    fn fuzz_dotenv_export_parse_round_trip(
        vars in prop::collection::btree_map(
            "[A-Za-z_][A-Za-z0-9_]{0,12}",
            tricky_string(48).prop_map(|v| v.replace('\0', "")),
            0..10,
        ),
        header in prop::collection::vec(tricky_string(32), 0..3),
    ) {
        let pairs: Vec<(String, String)> = vars.clone().into_iter().collect();
        let text = dotenv::write_env(&header, &pairs);
        let out = timed("dotenv::parse", || dotenv::parse(&text));
        prop_assert!(out.errors.is_empty(), "{:?} in {:?}", out.errors, text);
        let back: BTreeMap<String, String> =
            out.entries.into_iter().map(|e| (e.key, e.value)).collect();
        prop_assert_eq!(back, vars, "file: {:?}", text);
    }

    #[test]
    fn fuzz_proto_summarize_never_panics(text in prop_oneof![proto_like(), tricky_string(256)]) {
        match timed("protos::summarize", || protos::summarize("fuzz.proto", &text)) {
            Ok(s) => {
                // A file that parses declares what it counts: each message needs its keyword.
                prop_assert!(s.messages_count as usize <= text.matches("message").count() + text.matches("group").count());
                prop_assert!(s.services_count as usize <= text.matches("service").count());
            }
            // A refusal is the documented 400 with the position in `details.body`.
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::Invalid, "{}", e.message);
                let details = e.details.unwrap_or_default();
                prop_assert!(details.get("body").is_some(), "{}", details);
            }
        }
    }

    #[test]
    fn fuzz_parse_authorization_never_panics(value in prop_oneof![
        tricky_string(80),
        ("(?i)(token|bearer|api-key|basic|digest)", "[ \t]{0,2}", tricky_string(60))
            .prop_map(|(s, sp, rest)| format!("{s}{sp}{rest}")),
    ]) {
        // A refusal is always the documented 401 (`unauthenticated`), never another error.
        if let Err(e) = timed("parse_authorization", || parse_authorization(&value)) {
            prop_assert_eq!(e.code, ErrorCode::Unauthenticated, "{}", e.message);
            prop_assert_eq!(status_of(e.code).as_u16(), 401);
        }
    }

    /// The schemes give back exactly the credential they carry.
    #[test]
    fn fuzz_parse_authorization_round_trips(
        scheme in ascii_mixed_case(&["token", "bearer", "api-key"]),
        secret in "[!-~]{1,80}",
        ident in "[^:\\s]{1,40}",
        password in "[^\\s]{1,60}",
    ) {
        let parsed = parse_authorization(&format!("{scheme} {secret}"));
        let got = match parsed {
            Ok(Presented::Token(s) | Presented::Bearer(s) | Presented::ApiKey(s)) => s.expose().clone(),
            _ => return Err(TestCaseError::fail(format!("{scheme} was not parsed"))),
        };
        prop_assert_eq!(got, secret);
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{ident}:{password}"));
        match parse_authorization(&format!("Basic {encoded}")) {
            Ok(Presented::Basic { ident: i, password: p }) => {
                prop_assert_eq!(i, ident);
                prop_assert_eq!(p.expose(), &password);
            }
            _ => return Err(TestCaseError::fail("basic was not parsed")),
        }
    }

    #[test]
    fn fuzz_jwt_verify_never_panics(token in prop_oneof![
        tricky_string(200),
        "[A-Za-z0-9_.-]{0,300}",
        ("[A-Za-z0-9_-]{0,120}", "[A-Za-z0-9_-]{0,200}", "[A-Za-z0-9_-]{0,60}")
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        json_part().prop_map(|h| format!("{h}.e30.")),
    ]) {
        let keys = jwt_keys();
        match timed("jwt verify", || keys.verify(&token, 0)) {
            Ok(c) => return Err(TestCaseError::fail(format!("{token:?} verified to {c:?}"))),
            Err(e) => prop_assert_eq!(e.code, ErrorCode::Unauthenticated, "{}", e.message),
        }
    }

    /// A signed token verifies to its claims; any single-byte change either fails or (only when
    /// the change is invisible after decoding) still gives the same claims: nothing forges.
    #[test]
    fn fuzz_jwt_round_trip_and_tamper(claims in claims(), at in any::<prop::sample::Index>(), byte in 0x21u8..0x7f) {
        let keys = jwt_keys();
        let token = keys.sign(&claims).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = keys.verify(&token, claims.exp - 1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &claims);
        prop_assert!(keys.verify(&token, claims.exp).is_err(), "expired");
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        if let Some(b) = bytes.get_mut(i) {
            *b = byte;
        }
        let tampered = String::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if tampered != token {
            if let Ok(c) = keys.verify(&tampered, claims.exp - 1) {
                prop_assert_eq!(c, claims, "tampered token {} verified", tampered);
            }
        }
    }

    #[test]
    fn fuzz_template_sandbox_stays_bounded(source in prop_oneof![3 => template(), 1 => tricky_string(200)]) {
        let limits = Limits { fuel: 50_000, max_output_bytes: 16 * 1024 };
        let Ok(renderer) = timed("template compile", || Renderer::new(&source, limits)) else {
            return Ok(());
        };
        let input = serde_json::json!({"a": [1, 2, 3], "s": "text", "n": null, "o": {"k": "v"}});
        let params = serde_json::json!({"p": 7});
        let env: BTreeMap<String, String> =
            [("SECRET".to_string(), "hunter2-secret-value".to_string())].into_iter().collect();
        match timed("template render", || renderer.render(&input, &params, &env)) {
            Ok(out) => prop_assert!(out.len() <= limits.max_output_bytes, "{} bytes", out.len()),
            Err(RenderError::Template { message, .. }) => {
                prop_assert!(!message.contains("hunter2-secret-value"), "{}", message);
            }
            Err(_) => {}
        }
    }

    #[test]
    fn fuzz_paging_parameters(page in prop::option::of(any::<u64>()), size in prop::option::of(any::<u64>()), total in any::<u64>(), rows in 0usize..50) {
        // Accepted exactly when the documented bounds hold; refused as a 400 naming the field.
        let (p, ps) = (page.unwrap_or(1), size.unwrap_or(paging::DEFAULT_PAGE_SIZE));
        let valid = p >= 1 && (1..=paging::MAX_PAGE_SIZE).contains(&ps) && p.saturating_mul(ps) <= paging::MAX_DEPTH;
        let req = match PageRequest::new(page, size) {
            Ok(req) => req,
            Err(ApiError(e)) => {
                prop_assert!(!valid, "page={:?} page_size={:?} refused: {}", page, size, e.message);
                prop_assert_eq!(e.code, ErrorCode::Invalid);
                prop_assert_eq!(status_of(e.code).as_u16(), 400);
                let details = e.details.unwrap_or_default();
                prop_assert!(details.get("page").is_some() || details.get("page_size").is_some(), "{}", details);
                return Ok(());
            }
        };
        prop_assert!(valid, "page={:?} page_size={:?} accepted", page, size);
        prop_assert_eq!((req.page, req.page_size), (p, ps));
        prop_assert!(req.page >= 1);
        prop_assert!((1..=paging::MAX_PAGE_SIZE).contains(&req.page_size));
        prop_assert!(req.page * req.page_size <= paging::MAX_DEPTH);
        prop_assert!((req.offset() + req.limit()) as u64 <= paging::MAX_DEPTH);
        prop_assert!(req.slice((0..rows).collect::<Vec<_>>()).len() <= req.limit());
        // Past the last page is the documented 404; page 1 is always in range.
        match req.check_in_range(total) {
            Ok(()) => prop_assert!(req.page == 1 || (req.page - 1) * req.page_size < total),
            Err(ApiError(e)) => {
                prop_assert!(req.page > 1 && (req.page - 1) * req.page_size >= total);
                prop_assert_eq!(status_of(e.code).as_u16(), 404);
            }
        }
    }

    /// `next`/`previous` exist exactly when there is such a page and carry exactly one `page`
    /// (none for page 1); a hostile `Host` header never reaches the link (it falls back to
    /// `localhost`). A request built in-process has poem's default scheme and URI (`http`, `/`),
    /// so the `https` scheme and the kept query parameters are out of reach here.
    #[test]
    fn fuzz_paging_links(
        host in prop_oneof!["[a-z0-9.-]{1,20}(:[0-9]{1,5})?", "[ -~]{0,20}", tricky_string(20)],
        page in 1u64..50,
        size in 1u64..50,
        total in 0u64..5000,
    ) {
        let mut builder = poem::Request::builder();
        let sent = poem::http::HeaderValue::from_str(&host).ok();
        if let Some(h) = &sent {
            builder = builder.header(poem::http::header::HOST, h.clone());
        }
        let req = builder.finish();
        let pr = PageRequest::new(Some(page), Some(size)).map_err(|e| TestCaseError::fail(e.0.message))?;
        let (next, previous) = match pr.links(&req, total) {
            Ok(links) => links,
            Err(ApiError(e)) => {
                prop_assert!(page > 1 && (page - 1) * size >= total, "page {} of {} refused", page, total);
                prop_assert_eq!(status_of(e.code).as_u16(), 404);
                return Ok(());
            }
        };
        prop_assert_eq!(next.is_some(), page * size < total);
        prop_assert_eq!(previous.is_some(), page > 1);
        let plausible = !host.is_empty()
            && host.len() <= 255
            && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        let authority = if sent.is_some() && plausible { host.as_str() } else { "localhost" };
        for (url, want) in [(next, Some(page + 1)), (previous, (page > 2).then(|| page - 1))] {
            let Some(url) = url else { continue };
            let base = format!("http://{authority}/");
            prop_assert!(url.starts_with(&base), "{} does not start with {}", url, base);
            let pages: Vec<&str> = url.split(['?', '&']).skip(1).filter(|p| p.starts_with("page=")).collect();
            match want {
                Some(n) => prop_assert_eq!(pages, vec![format!("page={n}")]),
                None => prop_assert!(pages.is_empty(), "{}", url),
            }
        }
    }
}

/// One of `words` with each letter's ASCII case chosen at random. (A `(?i)` regex is not used:
/// it also yields U+212A KELVIN SIGN for `k`, which is rightly refused as an unknown scheme.)
fn ascii_mixed_case(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(words), any::<u64>()).prop_map(|(w, mask)| {
        w.chars()
            .enumerate()
            .map(|(i, c)| if (mask >> (i % 64)) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn jwt_keys() -> JwtKeys {
    JwtKeys::from_secret(&SecretKey::from_bytes([7u8; 32]))
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        "[a-z]{1,8}",
        1u64..u64::MAX,
        prop::option::of(any::<u64>()),
        any::<bool>(),
        "[a-f0-9]{32}",
        1i64..i64::MAX,
        any::<u64>(),
    )
        .prop_map(|(token_type, user_id, company_id, is_staff, jti, exp, cev)| Claims {
            token_type,
            sub: user_id.to_string(),
            user_id,
            company_id,
            is_staff,
            jti,
            exp,
            iat: 0,
            cev,
            pat_id: None,
            pat_ro: None,
            pat_agm: None,
        })
}

/// A base64url JSON header of arbitrary shape (the part read before the signature is checked).
fn json_part() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"HS256\"".to_string()),
        Just("null".to_string()),
        "[0-9]{1,5}",
        "\"[a-z0-9]{0,16}\"",
        Just("{}".to_string()),
        Just("[]".to_string()),
    ];
    prop::collection::vec((prop::sample::select(vec!["alg", "kid", "typ", "x"]), value), 0..4)
        .prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{{{}}}", body.join(",")))
        })
}

/// Token soup shaped like proto2/proto3 files, so most cases get past the first token.
fn proto_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "syntax = \"proto3\";",
        "syntax = \"proto2\";",
        "package a.b;",
        "import \"x.proto\";",
        "option java_package = \"x\";",
        "message",
        "enum",
        "service",
        "rpc",
        "returns",
        "stream",
        "oneof",
        "map<string, int32>",
        "repeated",
        "optional",
        "required",
        "group",
        "extend",
        "reserved",
        "extensions",
        "to",
        "max",
        "M",
        "N",
        "f",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "<",
        ">",
        ";",
        "=",
        ",",
        ".",
        "1",
        "2",
        "536870911",
        "-1",
        "0x10",
        "\"s\"",
        "'\\x'",
        "string",
        "int32",
        "bytes",
        "double",
        "true",
        "inf",
        "nan",
        "//c\n",
        "/* c */",
        "\n",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|t| t.join(" "))
}

/// Templates built from the constructs that cost work: loops, ranges, string repetition,
/// filters, macros, captures, recursion through macros, and raw blocks.
fn template() -> impl Strategy<Value = String> {
    let expr = prop_oneof![
        Just("input".to_string()),
        Just("input.a".to_string()),
        Just("input.s".to_string()),
        Just("input.o".to_string()),
        Just("parameters.p".to_string()),
        Just("env.SECRET".to_string()),
        Just("env.MISSING".to_string()),
        Just("undefined_name.x".to_string()),
        (0u64..2_000_000).prop_map(|n| format!("range({n})")),
        (0u64..10_000_000).prop_map(|n| format!("\"ab\" * {n}")),
        (0u64..10_000).prop_map(|n| n.to_string()),
        Just("\"x\"".to_string()),
        Just("1 / 0".to_string()),
    ];
    let filter = prop_oneof![
        Just("upper".to_string()),
        Just("tojson".to_string()),
        Just("length".to_string()),
        Just("list".to_string()),
        Just("join(\",\")".to_string()),
        Just("reverse".to_string()),
        Just("sort".to_string()),
        Just("unique".to_string()),
        Just("int".to_string()),
        (0u64..1_000_000).prop_map(|n| format!("indent({n})")),
        (0u64..1_000_000).prop_map(|n| format!("batch({n})")),
        (0u64..1_000_000).prop_map(|n| format!("center({n})")),
        Just("replace(\"\", \"abcdefgh\")".to_string()),
        Just("format(\"%999999d\")".to_string()),
    ];
    let print = (expr, prop::collection::vec(filter, 0..3)).prop_map(|(e, fs)| {
        let mut s = format!("{{{{ {e}");
        for f in fs {
            s.push_str(" | ");
            s.push_str(&f);
        }
        s.push_str(" }}");
        s
    });
    let leaf = prop_oneof![
        print,
        "[a-z ]{0,12}",
        Just("{{".to_string()),
        Just("{% endfor %}".to_string()),
        Just("{# c #}".to_string()),
        Just("{% raw %}{{ x }}{% endraw %}".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let body = prop::collection::vec(inner, 1..4).prop_map(|v| v.concat());
        prop_oneof![
            (0u64..1_000_000, body.clone())
                .prop_map(|(n, b)| format!("{{% for i in range({n}) %}}{b}{{% endfor %}}")),
            body.clone().prop_map(|b| format!("{{% for x in input.a %}}{b}{{% endfor %}}")),
            body.clone().prop_map(|b| format!("{{% if input.s %}}{b}{{% else %}}x{{% endif %}}")),
            body.clone().prop_map(|b| format!("{{% set c %}}{b}{{% endset %}}{{{{ c }}}}{{{{ c }}}}")),
            body.clone()
                .prop_map(|b| format!("{{% macro m(n) %}}{b}{{% if n %}}{{{{ m(n - 1) }}}}{{% endif %}}{{% endmacro %}}{{{{ m(30) }}}}")),
            body.clone().prop_map(|b| format!("{{% filter upper %}}{b}{{% endfilter %}}")),
            body,
        ]
    })
}

/// Regression cases the properties above must keep passing (found or worth pinning).
#[test]
fn fuzz_regressions() {
    // An unterminated quote at the very end, a lone CR, a BOM alone.
    for input in ["K='", "K=\"\\", "\r", "\u{feff}", "export", "=", "K=\"\r\n"] {
        let _ = dotenv::parse(input);
    }
    // A looping template runs out of fuel instead of running on.
    // (`range` itself refuses more than 100 000 elements, so the loop is nested.)
    let r = Renderer::new(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        Limits::default(),
    );
    let out = r.map(|r| r.render(&serde_json::json!({}), &serde_json::json!({}), &BTreeMap::new()));
    assert!(matches!(out, Ok(Err(RenderError::OutOfFuel))), "{out:?}");
}
