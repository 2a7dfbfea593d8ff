//! The manual page `packaging/gatehouse.1` (shipped in the .deb) is generated from the clap
//! `Cli` and committed; this test regenerates it and fails when the CLI changed without the
//! page (`GATEHOUSE_BLESS=1 cargo test --lib cli::manpage` rewrites it). Also checks that the
//! packaged configuration stays `config/gatehouse.toml` with only the listen address and the
//! data directory changed, and that it loads.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

use super::Cli;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The whole page: clap_mangen's title, NAME, SYNOPSIS, DESCRIPTION and global OPTIONS, then
/// one COMMANDS section with every command's synopsis and own options (clap_mangen's
/// SUBCOMMANDS section points at a `gatehouse-<command>(1)` page per command, which would have
/// to be shipped too), then the files the package installs and uses.
fn render() -> String {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).manual("Gatehouse");
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    let mut page = String::from_utf8(out).unwrap();
    page.push_str(".SH COMMANDS\n");
    let mut leaves = Vec::new();
    collect_leaves(&cmd, "gatehouse", &mut leaves);
    for (path, leaf) in leaves {
        page.push_str(&command_section(&path, leaf));
    }
    page.push_str(FILES);
    // Each clap_mangen render starts with the same quote-string preamble; keep it once. An
    // option without help text leaves an empty line, which roff reads as a paragraph break.
    let body = page
        .lines()
        .filter(|l| !l.is_empty() && !PREAMBLE.lines().any(|p| p == *l))
        .fold(String::new(), |acc, l| acc + l + "\n");
    format!("{PREAMBLE}{body}")
}

const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

fn collect_leaves<'a>(
    cmd: &'a clap::Command,
    path: &str,
    out: &mut Vec<(String, &'a clap::Command)>,
) {
    for sub in cmd.get_subcommands() {
        let path = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            collect_leaves(sub, &path, out);
        } else {
            out.push((path, sub));
        }
    }
}

/// `.SS gatehouse admin create-user`, its help text, synopsis and own (non-global) options.
fn command_section(path: &str, leaf: &clap::Command) -> String {
    let only = leaf
        .clone()
        .bin_name(path)
        .about(leaf.get_long_about().or(leaf.get_about()).cloned().unwrap_or_default())
        .long_about(None)
        .mut_args(|a| {
            let shared = a.is_global_set() || matches!(a.get_id().as_str(), "help" | "version");
            a.hide(shared)
        });
    let man = clap_mangen::Man::new(only.clone());
    let mut out = Vec::new();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    if only.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    let mut section = format!(".SS {}\n", path.replace('-', "\\-"));
    for line in text.lines() {
        // Sections of the command become paragraphs of its subsection.
        section.push_str(if line.starts_with(".SH ") { ".PP" } else { line });
        section.push('\n');
    }
    section
}

const FILES: &str = r".SH FILES
.TP
\fI/etc/gatehouse/gatehouse.toml\fR
The configuration: every key with its default and a comment. Settings can also come from
\fBGATEHOUSE_\fR\fISECTION\fR\fB_\fR\fIKEY\fR environment variables and the flags above, which win.
.TP
\fI/var/lib/gatehouse/\fR
The data directory (mode 0700, owner gatehouse): \fIgatehouse.redb\fR (all state),
\fImaster.key\fR (unless given by \fB\-\-master\-key\-file\fR or the systemd credential
\fImaster.key\fR), \fIca.pem\fR (the local CA certificate), \fIindex/\fR (the request log search
index) and \fIbackups/\fR.
.TP
\fI/usr/lib/systemd/system/gatehouse.service\fR
The systemd unit; \fBsystemctl edit gatehouse\fR adds a drop-in.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1)
";

#[test]
fn manual_page_matches_the_cli() {
    let path = repo_file("packaging/gatehouse.1");
    let page = render();
    if super::process_env().get("GATEHOUSE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &page).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "{} is not the page the CLI generates; rerun with GATEHOUSE_BLESS=1 and commit it",
        path.display()
    );
}

/// The two settings the package changes: an appliance serves every interface and keeps its
/// state where systemd's `StateDirectory=gatehouse` puts it.
const PACKAGED: [(&str, &str); 2] =
    [("listen", "listen = \"0.0.0.0:8443\""), ("data_dir", "data_dir = \"/var/lib/gatehouse\"")];

#[test]
fn packaged_config_is_the_example_with_two_settings_changed() {
    let example = std::fs::read_to_string(repo_file("config/gatehouse.toml")).unwrap();
    let packaged = std::fs::read_to_string(repo_file("packaging/gatehouse.toml")).unwrap();
    let (example, packaged): (Vec<_>, Vec<_>) =
        (example.lines().collect(), packaged.lines().collect());
    assert_eq!(example.len(), packaged.len(), "packaging/gatehouse.toml gained or lost lines");
    let mut section = "";
    let mut seen = Vec::new();
    for (n, (ex, pk)) in example.iter().zip(&packaged).enumerate() {
        if ex.starts_with('[') {
            section = ex;
        }
        let key = PACKAGED.iter().find(|(key, _)| ex.starts_with(&format!("{key} =")));
        match key {
            Some((key, line)) if section == "[server]" => {
                assert_eq!(pk, line, "packaging/gatehouse.toml line {}", n + 1);
                seen.push(*key);
            }
            _ => assert_eq!(
                ex,
                pk,
                "packaging/gatehouse.toml line {} differs from config/gatehouse.toml",
                n + 1
            ),
        }
    }
    assert_eq!(seen, ["listen", "data_dir"]);
}

#[test]
fn packaged_config_loads() {
    let path = repo_file("packaging/gatehouse.toml");
    let env = std::collections::BTreeMap::new();
    let config =
        crate::config::Config::from_sources(Some(&path), &env, &crate::config::Flags::default())
            .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:8443");
    assert_eq!(config.server.data_dir, Path::new("/var/lib/gatehouse"));
    assert!(!config.server.insecure_http);
}
