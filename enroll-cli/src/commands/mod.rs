//! One module per subcommand (file names mirror the command words), and the dispatcher.

pub mod audit;
pub mod backup_codes;
pub mod disable;
pub mod doctor;
pub mod enroll;
pub mod explain;
pub mod forget_hosts;
pub mod import_google_authenticator;
pub mod import_oath;
pub mod list;
pub mod man;
pub mod migrate;
pub mod qr;
pub mod remove;
pub mod reset;
pub mod status;
pub mod unlock;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::{Error, Result};
use std::io::{BufRead, Write};

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command reports.
pub fn run(cli: Cli) -> Result<()> {
    // Nearly every command reads or makes a secret file, which holds a key (`doctor` and
    // `explain` parse them too): no core dump and no same-user debugger from the start.
    crate::context::protect_key_memory()?;
    let config = cli.config.as_deref();
    // Commands that must work with a broken or absent configuration come first.
    match &cli.command {
        Command::Completions { shell } => {
            man::completions(*shell);
            return Ok(());
        }
        Command::Manpage => {
            print!("{}", man::manpage());
            return Ok(());
        }
        Command::Doctor(args) => return doctor::run(config, args),
        Command::Explain(args) => return explain::run(config, args),
        _ => {}
    }
    let mut ctx = Ctx::load(config)?;
    match &cli.command {
        Command::Enroll(args) => enroll::run(&mut ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::BackupCodes(args) => backup_codes::run(&ctx, args),
        Command::Qr(args) => qr::run(&ctx, args),
        Command::List(args) => list::run(&ctx, args),
        Command::Remove(args) => remove::run(&ctx, args),
        Command::Disable(args) => disable::run(&ctx, args),
        Command::Reset(args) => reset::run(&ctx, args),
        Command::Unlock(args) => unlock::run(&ctx, args),
        Command::ForgetHosts(args) => forget_hosts::run(&ctx, args),
        Command::ImportGoogleAuthenticator(args) => import_google_authenticator::run(&ctx, args),
        Command::ImportOath(args) => import_oath::run(&ctx, args),
        Command::Migrate(args) => migrate::run(&ctx, args),
        Command::Completions { .. }
        | Command::Manpage
        | Command::Doctor(_)
        | Command::Explain(_) => Ok(()),
    }
}

/// Asks for a password: on a terminal without echo, else one line of stdin (scripts and
/// tests). `None` at end of input or when reading fails.
pub fn read_password(question: &str) -> Option<zeroize::Zeroizing<String>> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let answer = prompt(question);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
        eprintln!();
    }
    answer.ok().flatten()
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
