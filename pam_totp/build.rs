//! Links GCC's unwinder (`libgcc_eh.a`) into the module instead of depending on `libgcc_s.so.1`.
//!
//! sshd, su and most PAM applications are C programs that do not have `libgcc_s.so.1` loaded,
//! so a module that needs it makes every `pam_start` load (and every `pam_end` unload) a second
//! shared library: about 90 µs per connection on a 2-core VM, more than the module itself.
//! The unwinder is still there, so `panic = "unwind"` and `catch_unwind` at the FFI boundary
//! work as before; unwinding never crosses into the calling program, so a private copy is safe.
//!
//! The archive is listed as a native library of this crate, so rustc places it before the
//! standard library's `-lgcc_s`; with `--as-needed` (rustc's default on Linux) `libgcc_s.so.1`
//! then satisfies nothing and is not recorded as NEEDED.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !(target.contains("linux") && target.ends_with("-gnu")) {
        return;
    }
    // The C compiler for the target, found as the `cc` crate does; when cross-compiling without
    // one named, the host's `cc` would report the host's archive: keep the dynamic unwinder.
    let env = |name: &str| {
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var(name).ok()
    };
    let host = std::env::var("HOST").unwrap_or_default();
    let named = env(&format!("CC_{}", target.replace('-', "_")))
        .or_else(|| env(&format!("CC_{target}")))
        .or_else(|| env("TARGET_CC"));
    let cc = match named {
        Some(cc) => cc,
        None if target == host => env("CC").unwrap_or_else(|| "cc".into()),
        None => return,
    };
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = std::path::Path::new(&path);
    // `cc` prints the bare name when it does not know the file: keep the dynamic unwinder then.
    let (Some(dir), true) = (path.parent(), path.is_absolute() && path.exists()) else {
        return;
    };
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}
