//! The built libpam_totp.so as libpam will load it: linked dynamically against libpam.so.0 and
//! exporting exactly the pam_sm_* entry points (nothing else the host could collide with).

use pam_totp_e2e::harness::module_path;
use std::process::Command;

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(module_path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (binutils): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn given_built_module_then_needed_libpam_so_0() {
    let dynamic = tool("readelf", &["-d"]);
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(NEEDED)") && l.contains("[libpam.so.0]")),
        "libpam_totp.so does not link libpam.so.0:\n{dynamic}"
    );
}

#[test]
fn given_built_module_then_only_pam_sm_symbols_are_exported() {
    let symbols = tool("nm", &["-D", "--defined-only"]);
    let exported: Vec<&str> = symbols
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().rev();
            let name = words.next()?;
            let kind = words.next()?;
            // Version definition entries (type A, e.g. a version script's node) are not symbols.
            (kind != "A").then_some(name)
        })
        .collect();
    let foreign: Vec<&&str> = exported
        .iter()
        .filter(|s| !s.starts_with("pam_sm_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "exports beyond pam_sm_*: {foreign:?}\n{symbols}"
    );
    for needed in ["pam_sm_authenticate", "pam_sm_setcred"] {
        assert!(
            exported.contains(&needed),
            "{needed} not exported:\n{symbols}"
        );
    }
}

/// sshd and most PAM applications do not have libgcc_s.so.1 loaded: needing it would make every
/// connection load and unload a second library (pam_totp/build.rs links the unwinder in).
#[test]
fn given_built_module_then_libgcc_s_is_not_needed() {
    let dynamic = tool("readelf", &["-d"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.is_empty() && !needed.iter().any(|l| l.contains("libgcc_s")),
        "libpam_totp.so needs libgcc_s.so.1 (or nothing at all):\n{dynamic}"
    );
}

/// Full RELRO: relocations done at load (BIND_NOW) and the relocated data made read-only.
#[test]
fn given_built_module_then_bind_now_and_relro() {
    let dynamic = tool("readelf", &["-d"]);
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(FLAGS)") && l.contains("BIND_NOW"))
            || dynamic
                .lines()
                .any(|l| l.contains("(FLAGS_1)") && l.contains("NOW")),
        "libpam_totp.so is not linked with -z now:\n{dynamic}"
    );
    let headers = tool("readelf", &["-l", "-W"]);
    assert!(
        headers
            .lines()
            .any(|l| l.trim_start().starts_with("GNU_RELRO")),
        "libpam_totp.so has no GNU_RELRO segment:\n{headers}"
    );
}
