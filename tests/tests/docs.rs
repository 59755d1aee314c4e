//! What README.md and docs/ssh.md tell a reader to type must exist: the make targets, the
//! repository files and scripts, and the `pam-totp` subcommands with their flags (checked against
//! the built CLI's `--help`). Code is taken from fenced blocks and inline `code` spans; links from
//! `[text](path)`.

use pam_totp_e2e::harness::{cli_path, workspace_dir};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The documents checked, relative to the workspace.
const DOCS: [&str; 2] = ["README.md", "docs/ssh.md"];

/// The code of a Markdown text: each line of a fenced block, and each inline span, as one item.
fn code_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            items.push(line.to_string());
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            items.push(code.to_string());
        }
    }
    items
}

/// Relative link targets (`[text](target)`), without anchors.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|t| t.split('#').next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// Shell words of one code item, up to a comment.
fn words(item: &str) -> Vec<&str> {
    item.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

/// The targets of `make ...` (after `sudo`, `VAR=value`, options).
fn make_targets(item: &str) -> Vec<String> {
    let w = words(item);
    let Some(at) = w.iter().position(|&x| x == "make") else {
        return Vec::new();
    };
    let before_ok = w[..at].iter().all(|x| *x == "sudo" || x.contains('='));
    if !before_ok {
        return Vec::new();
    }
    w[at + 1..]
        .iter()
        .take_while(|x| !matches!(**x, "&&" | "||" | ";" | "|"))
        .filter(|x| !x.starts_with('-') && !x.contains('='))
        .map(|x| x.to_string())
        .collect()
}

/// The targets the Makefile defines.
fn makefile_targets(root: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root.join("Makefile")).expect("Makefile");
    text.lines()
        .filter(|l| !l.starts_with(['\t', '#', ' ']))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .flat_map(|(names, _)| names.split_whitespace().map(str::to_string))
        .filter(|n| !n.contains('$') && !n.starts_with('.'))
        .collect()
}

/// `pam-totp SUB --flag...` uses: (subcommand or "" for the top level, flags).
fn cli_uses(item: &str) -> Vec<(String, Vec<String>)> {
    let w = words(item);
    let mut uses = Vec::new();
    for (i, _) in w.iter().enumerate().filter(|(_, x)| **x == "pam-totp") {
        let rest: Vec<&str> = w[i + 1..]
            .iter()
            .copied()
            .take_while(|x| !matches!(*x, "&&" | "||" | ";" | "|" | "or" | "and"))
            .collect();
        let sub = match rest.first() {
            Some(s)
                if s.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !s.starts_with('-') =>
            {
                s.to_string()
            }
            _ => String::new(),
        };
        let flags = rest
            .iter()
            .filter(|x| x.starts_with("--"))
            .map(|x| {
                x.split('=')
                    .next()
                    .unwrap_or(x)
                    .trim_end_matches([',', '.', ')'])
                    .to_string()
            })
            .collect();
        uses.push((sub, flags));
    }
    uses
}

/// Repository paths named in code (`config/...`, `tests/run-all.sh`, ...): words whose first
/// component is a top-level directory of the workspace.
fn repo_paths(item: &str, root: &Path) -> Vec<String> {
    words(item)
        .into_iter()
        .map(|x| x.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | '.' | ':' | '"' | '\'')))
        .filter(|x| x.contains('/') && !x.starts_with('/') && !x.starts_with('~'))
        .filter(|x| {
            let first = x.split('/').next().unwrap_or("");
            first != "target" && !first.is_empty() && root.join(first).is_dir()
        })
        .map(str::to_string)
        .collect()
}

/// Whether `path` (which may end in a `*` glob in its last component) names something.
fn exists(root: &Path, path: &str) -> bool {
    let full = root.join(path);
    let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
        return full.exists();
    };
    if !name.contains('*') {
        return full.exists();
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    std::fs::read_dir(full.parent().unwrap_or(root))
        .map(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(prefix) && n.ends_with(suffix)
            })
        })
        .unwrap_or(false)
}

#[test]
fn given_the_docs_then_every_make_target_file_subcommand_and_flag_they_quote_exists() {
    let root = workspace_dir();
    let targets = makefile_targets(&root);
    let cli = cli_path();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut helps: std::collections::BTreeMap<String, Option<String>> = Default::default();
    for doc in DOCS {
        let text = std::fs::read_to_string(root.join(doc)).expect(doc);
        let doc_dir = root
            .join(doc)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for link in links(&text) {
            checked += 1;
            if !doc_dir.join(&link).exists() {
                problems.push(format!("{doc}: link to {link}, which does not exist"));
            }
        }
        for item in code_items(&text) {
            for target in make_targets(&item) {
                checked += 1;
                if !targets.contains(&target) {
                    problems.push(format!("{doc}: `{item}`: no make target {target}"));
                }
            }
            for path in repo_paths(&item, &root) {
                checked += 1;
                if !exists(&root, &path) {
                    problems.push(format!("{doc}: `{item}`: {path} does not exist"));
                }
            }
            for (sub, flags) in cli_uses(&item) {
                checked += 1;
                let help = helps.entry(sub.clone()).or_insert_with(|| {
                    let mut cmd = Command::new(&cli);
                    if !sub.is_empty() {
                        cmd.arg(&sub);
                    }
                    let out = cmd.arg("--help").output().expect("run pam-totp --help");
                    out.status
                        .success()
                        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
                });
                let Some(help) = help else {
                    problems.push(format!("{doc}: `{item}`: no subcommand `pam-totp {sub}`"));
                    continue;
                };
                for flag in flags {
                    if !help.contains(&flag) {
                        problems.push(format!("{doc}: `{item}`: `pam-totp {sub}` has no {flag}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The parsing found something to check (a change of format would otherwise pass silently).
    assert!(checked > 40, "only {checked} things checked");
    for must in ["deps", "install", "deb"] {
        assert!(targets.contains(must), "make {must} is gone");
    }
}

#[test]
fn given_markdown_then_code_items_make_targets_and_cli_uses_are_found() {
    let text = "Run `sudo SKIP=1 make deps install` or\n```sh\npam-totp enroll --user alice --qr=none # x\n```\n\
                see [ssh](docs/ssh.md#top) and `pam-totp.conf`";
    let items = code_items(text);
    assert_eq!(
        items,
        [
            "sudo SKIP=1 make deps install",
            "pam-totp enroll --user alice --qr=none # x",
            "pam-totp.conf"
        ]
    );
    assert_eq!(make_targets(&items[0]), ["deps", "install"]);
    assert_eq!(
        cli_uses(&items[1]),
        [(
            "enroll".to_string(),
            vec!["--user".to_string(), "--qr".to_string()]
        )]
    );
    assert!(cli_uses(&items[2]).is_empty());
    assert_eq!(links(text), ["docs/ssh.md"]);
    let root = workspace_dir();
    assert_eq!(
        repo_paths(
            "cp config/pam.d/sshd-publickey.example /etc/pam.d/sshd",
            &root
        ),
        ["config/pam.d/sshd-publickey.example"]
    );
    assert!(exists(&root, "config/pam.d/*.example"));
    assert!(!exists(&root, "config/pam.d/no-such-*.example"));
}

/// The fenced `sh` blocks of a Markdown text.
fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().starts_with("```")) {
            (None, true) if line.trim_start().starts_with("```sh") => current = Some(String::new()),
            (Some(block), true) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// The settings of a PAM or sshd file: comments, blank lines and spacing left out.
fn settings(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// docs/ssh.md's set-up commands (3a, then 3b), run on scratch copies of `/etc/pam.d/sshd` and
/// the drop-in, give exactly the stacks and settings of the example files the SSH tests log in
/// with, and the backup keeps the original through both.
#[test]
fn given_ssh_md_setup_commands_then_they_give_the_tested_example_files_and_keep_the_backup() {
    let root = workspace_dir();
    let doc = std::fs::read_to_string(root.join("docs/ssh.md")).expect("docs/ssh.md");
    let example = |p: &str| std::fs::read_to_string(root.join("config").join(p)).expect(p);
    let setups: Vec<String> = sh_blocks(&doc)
        .into_iter()
        .filter(|b| b.contains("sed -i") && b.contains("/etc/ssh/sshd_config.d/pam-totp.conf"))
        .collect();
    assert_eq!(
        setups.len(),
        2,
        "expected the 3a and 3b blocks: {setups:#?}"
    );
    // The README shows the same canonical set-up, word for word.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let readme_setups: Vec<String> = sh_blocks(&readme)
        .into_iter()
        .filter(|b| b.contains("sed -i"))
        .collect();
    assert_eq!(
        readme_setups,
        setups[..1],
        "README.md and docs/ssh.md (3a) differ"
    );
    // Debian's packaged file where there is one; else the example with the line it replaces.
    let publickey_pam = example("pam.d/sshd-publickey.example");
    let original = std::fs::read_to_string("/etc/pam.d/sshd")
        .ok()
        .filter(|t| t.lines().filter(|l| *l == "@include common-auth").count() == 1)
        .unwrap_or_else(|| {
            publickey_pam
                .replacen("auth    required    pam_totp.so", "@include common-auth", 1)
                .replacen("auth    required    pam_permit.so\n", "", 1)
        });
    let dir = pam_totp_e2e::harness::TempDir::new("docs-ssh");
    let pam = dir.join("sshd");
    let drop_in = dir.join("pam-totp.conf");
    let run = |block: &str| {
        let script = block
            .replace("/etc/pam.d/sshd", &pam.display().to_string())
            .replace(
                "/etc/ssh/sshd_config.d/pam-totp.conf",
                &drop_in.display().to_string(),
            );
        let out = Command::new("sh")
            .args(["-e", "-c", &script])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let check = |pam_example: &str, sshd_example: &str| {
        let got = std::fs::read_to_string(&pam).expect("edited sshd");
        assert_eq!(
            settings(&got),
            settings(&example(pam_example)),
            "{pam_example}"
        );
        let got = std::fs::read_to_string(&drop_in).expect("drop-in");
        assert_eq!(
            settings(&got),
            settings(&example(sshd_example)),
            "{sshd_example}"
        );
    };
    let backup = || std::fs::read_to_string(dir.join("sshd.before-totp")).expect("backup");
    std::fs::write(&pam, &original).expect("scratch sshd");
    run(&setups[0]);
    check(
        "pam.d/sshd-publickey.example",
        "sshd_config.d/pam-totp-publickey.conf.example",
    );
    // Run again on the edited file: the backup still holds the original.
    run(&setups[0]);
    assert_eq!(backup(), original, "a second run replaced the backup");
    // Switching to 3b: the undo of docs/ssh.md, then the 3b block.
    std::fs::copy(dir.join("sshd.before-totp"), &pam).expect("undo");
    run(&setups[1]);
    check(
        "pam.d/sshd-password.example",
        "sshd_config.d/pam-totp-password.conf.example",
    );
    assert_eq!(backup(), original, "3b replaced the backup");
}
