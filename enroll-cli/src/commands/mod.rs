//! One module per subcommand (file names mirror the command words), and the dispatcher.

pub mod enroll;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::{Error, Result};
use std::io::{BufRead, Write};

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command reports.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Completions { .. } | Command::Manpage | Command::Doctor(_) => {}
        _ => {}
    }
    let mut ctx = Ctx::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Enroll(args) => enroll::run(&mut ctx, args),
        _ => Err(Error::usage(
            "this command is not implemented yet",
            "Use `pam-totp enroll --json` for now.",
        )),
    }
}

/// Prints `question` on stderr and reads one line from stdin. `Ok(None)` at end of input.
///
/// # Errors
/// Reading failed.
pub fn prompt(question: &str) -> Result<Option<zeroize::Zeroizing<String>>> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut line = zeroize::Zeroizing::new(String::new());
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::Io)?;
    if n == 0 {
        eprintln!();
        return Ok(None);
    }
    let trimmed = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    Ok(Some(trimmed))
}
