//! The `pam-totp` command: enrollment of authenticators and administration of the second
//! factor. A library so that tests (and the man page generator) can reach the clap definition;
//! the binary is `src/main.rs`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
pub mod output;
pub mod qr;

use clap::Parser;
use std::process::ExitCode;

/// Parses the command line, runs the command and turns the outcome into an exit status. Errors
/// are printed to stderr as `Error: what is wrong.` followed by a line saying what to do.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut text = e.to_string();
            if let Some(first) = text.get(..1) {
                let upper = first.to_uppercase();
                text.replace_range(..1, &upper);
            }
            // Errors quote names, paths and arguments: escaped like every user-controlled text
            // (line by line, keeping the line that says what to do).
            let shown: Vec<_> = text.lines().map(output::safe).collect();
            eprintln!("Error: {}", shown.join("\n"));
            ExitCode::from(e.exit_code())
        }
    }
}
