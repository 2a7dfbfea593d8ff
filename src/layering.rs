//! The dependency rule, checked over the sources: which top-level module may name which
//! (`crate::<module>`), with no cycles, plus the rules a module list cannot express (only
//! `store` names redb, nothing below `api` names poem, `api` never reaches a table). Test
//! files (`tests.rs`, `*_tests.rs`, and inline `#[cfg(test)]` modules at the end of a file) may
//! set up state through any module and are not checked. `tls` is the listener poem serves
//! from, so it names poem too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may import. A new module gets a line here.
const ALLOWED: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("config", &[]),
    ("crypto", &[]),
    ("tls", &[]),
    ("workers", &[]),
    ("logging", &["config"]),
    ("store", &["clock", "crypto"]),
    ("domain", &["clock", "config", "crypto", "store"]),
    ("auth", &["clock", "config", "crypto", "domain", "store"]),
    ("logs", &["clock", "config", "crypto", "domain", "store", "workers"]),
    ("metrics", &["clock", "config", "domain"]),
    (
        "services",
        &[
            "auth", "clock", "config", "crypto", "domain", "logs", "metrics", "store", "tls",
            "workers",
        ],
    ),
    (
        "api",
        &["auth", "clock", "config", "crypto", "domain", "logs", "metrics", "services", "store"],
    ),
    (
        "app",
        &[
            "api", "auth", "clock", "config", "crypto", "domain", "logs", "metrics", "services",
            "store", "tls", "workers",
        ],
    ),
    (
        "cli",
        &[
            "api", "app", "auth", "clock", "config", "crypto", "domain", "logging", "logs",
            "metrics", "services", "store", "tls", "workers",
        ],
    ),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The non-test text of every `.rs` file of a top-level module.
fn module_sources(module: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let file = src_dir().join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src_dir().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("\n#[cfg(test)]\nmod ") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            (path, code)
        })
        .collect()
}

fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').to_string())
        .filter(|m| m != "layering")
        .collect()
}

/// `crate::<name>` references in `code`, with the line they are on.
fn crate_refs(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            out.push((name, n + 1));
        }
    }
    out
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let modules = top_level_modules();
    let mut violations = Vec::new();
    for module in &modules {
        let Some(may) = allowed.get(module.as_str()) else {
            violations.push(format!("{module}: not in the layering table (src/layering.rs)"));
            continue;
        };
        for (path, code) in module_sources(module) {
            for (name, line) in crate_refs(&code) {
                let is_module = modules.contains(&name);
                if is_module && name != *module && !may.contains(&name.as_str()) {
                    violations.push(format!("{}:{line}: {module} → {name}", path.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layering:\n{}", violations.join("\n"));
}

#[test]
fn the_layering_table_has_no_cycles() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Kahn's algorithm: repeatedly remove modules whose allowed imports are all removed.
    let mut left: BTreeSet<&str> = allowed.keys().copied().collect();
    while !left.is_empty() {
        let ready: Vec<&str> =
            left.iter().copied().filter(|m| allowed[m].iter().all(|d| !left.contains(d))).collect();
        assert!(!ready.is_empty(), "a cycle among {left:?}");
        for m in ready {
            left.remove(m);
        }
    }
}

#[test]
fn only_store_names_redb_and_only_the_web_layer_names_poem() {
    let mut violations = Vec::new();
    for module in top_level_modules() {
        for (path, code) in module_sources(&module) {
            for (n, line) in code.lines().enumerate() {
                let code_part = line.split("//").next().unwrap_or("");
                if module != "store" && code_part.contains("redb::") {
                    violations.push(format!("{}:{}: redb outside store", path.display(), n + 1));
                }
                let web = ["api", "app", "cli", "tls"].contains(&module.as_str());
                if !web && (code_part.contains("poem::") || code_part.contains("poem_openapi")) {
                    violations.push(format!("{}:{}: poem below api", path.display(), n + 1));
                }
                if module == "api" && code_part.contains("tables::") {
                    violations.push(format!("{}:{}: api reads a table", path.display(), n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
