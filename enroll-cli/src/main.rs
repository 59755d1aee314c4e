//! Entry point of the `pam-totp` binary; everything lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pam_totp_cli::main_entry()
}
