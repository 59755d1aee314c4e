//! `pam-totp migrate` (root): pushes the local enrollments (the secret files `secret` names)
//! into the directory `store = "ldap"` names, with what their state says is spent: used backup
//! codes, the last step of each authenticator and HOTP counters, so nothing used here becomes
//! good again on another server. Idempotent: an enrollment already in the directory (same
//! enrollment id) only gets its spent codes carried again, which changes nothing the second
//! time. `--dry-run` writes nothing.

use crate::cli::MigrateArgs;
use crate::commands::audit;
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::output;
use pam_totp_core::accounts::Accounts;
use pam_totp_core::config::Backend;
use pam_totp_core::secret_file::SecretFile;
use pam_totp_core::state::State;
use pam_totp_core::store::{BackupUse, HotpUse, Replace, Store, TotpUse, UserInfo};

/// What happened to one user.
enum Done {
    Migrated { carried: usize },
    AlreadyThere { carried: usize },
    Conflict,
}

/// Runs `migrate`.
///
/// # Errors
/// See [`Error`].
pub fn run(ctx: &Ctx, args: &MigrateArgs) -> Result<()> {
    context::require_root("migrate")?;
    if !matches!(ctx.config.backend, Backend::Directory(_)) {
        return Err(Error::usage(
            "migrate copies local enrollments into a directory, but the configuration says \
             store = \"files\"",
            "Set store = \"ldap\" and an [ldap] table in the configuration first (docs/fleet.md); \
             `secret` and `state_dir` keep naming the local files to migrate.",
        ));
    }
    let local = ctx.config.store().map_err(Error::ConfigIdentity)?;
    let users = if args.user.is_empty() {
        let mut accounts = Accounts::read();
        accounts.add_by_lookup(local.users_with_state().map_err(Error::State)?);
        accounts.into_users()
    } else {
        args.user
            .iter()
            .map(|name| context::lookup(name))
            .collect::<Result<Vec<_>>>()?
    };
    let (mut migrated, mut present, mut conflicts, mut failed) = (0, 0, 0, 0);
    for user in &users {
        let file = match local.load_enrollment(user) {
            Ok(Some(f)) => f,
            Ok(None) => {
                if !args.user.is_empty() {
                    println!(
                        "{}: no local enrollment; skipped.",
                        output::safe(&user.name)
                    );
                }
                continue;
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{}: local enrollment unusable ({e}); skipped.",
                    output::safe(&user.name)
                );
                continue;
            }
        };
        let state = match local.state(&user.name) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                failed += 1;
                println!(
                    "{}: local state unusable ({e}); skipped: its used codes could be replayed.",
                    output::safe(&user.name)
                );
                continue;
            }
        };
        match migrate_one(ctx, user, &file, &state, args) {
            Ok(Done::Migrated { carried }) => {
                migrated += 1;
                println!(
                    "{}: {} {} authenticator{} and {} backup code{}; {carried} spent code{} carried.",
                    output::safe(&user.name),
                    if args.dry_run { "would copy" } else { "copied" },
                    file.authenticators.len(),
                    plural(file.authenticators.len()),
                    file.backup.as_ref().map_or(0, |b| b.hashes.len()),
                    plural(file.backup.as_ref().map_or(0, |b| b.hashes.len())),
                    plural(carried),
                );
            }
            Ok(Done::AlreadyThere { carried }) => {
                present += 1;
                println!(
                    "{}: already in the directory; {carried} spent code{} {}.",
                    output::safe(&user.name),
                    plural(carried),
                    if args.dry_run {
                        "would be carried again"
                    } else {
                        "carried again"
                    },
                );
            }
            Ok(Done::Conflict) => {
                conflicts += 1;
                println!(
                    "{}: the directory holds another enrollment; left as it is (--force replaces it).",
                    output::safe(&user.name)
                );
            }
            Err(e) => {
                failed += 1;
                println!("{}: not migrated: {e}", output::safe(&user.name));
            }
        }
    }
    println!(
        "{}: {migrated} migrated, {present} already there, {conflicts} left (other enrollment), \
         {failed} failed.",
        if args.dry_run { "Dry run" } else { "Done" }
    );
    if !args.dry_run {
        audit::log(
            "migrate",
            "-",
            &format!("migrated={migrated} present={present} conflicts={conflicts} failed={failed}"),
        );
    }
    if failed > 0 {
        return Err(Error::usage(
            format!("{failed} user(s) could not be migrated"),
            "Fix what the lines above name and run `pam-totp migrate` again: it skips what is \
             already done.",
        ));
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn migrate_one(
    ctx: &Ctx,
    user: &UserInfo,
    file: &SecretFile,
    state: &State,
    args: &MigrateArgs,
) -> Result<Done> {
    let there = ctx.store.load_enrollment(user).map_err(Error::from_load)?;
    let same = there
        .as_ref()
        .is_some_and(|t| t.enrollment_id == file.enrollment_id);
    if there.is_some() && !same && !args.force {
        return Ok(Done::Conflict);
    }
    let spent = spent_codes(file, state);
    if args.dry_run {
        return Ok(if same {
            Done::AlreadyThere { carried: spent }
        } else {
            Done::Migrated { carried: spent }
        });
    }
    if !same {
        ctx.store
            .save_enrollment(user, file, Replace::Yes)
            .map_err(Error::from_save)?;
    }
    let carried = carry(&*ctx.store, &user.name, file, state)?;
    Ok(if same {
        Done::AlreadyThere { carried }
    } else {
        Done::Migrated { carried }
    })
}

/// How many spent codes the local state records for this enrollment.
fn spent_codes(file: &SecretFile, state: &State) -> usize {
    if state.enrollment_id != file.enrollment_id {
        return 0;
    }
    let set = file
        .backup
        .as_ref()
        .map(|b| b.set_id.as_str())
        .unwrap_or("");
    state.used_backup_codes(set).len() + state.last_step.len() + state.hotp_next.len()
}

/// Spends in the directory what the local state says is spent.
fn carry(store: &dyn Store, user: &str, file: &SecretFile, state: &State) -> Result<usize> {
    if state.enrollment_id != file.enrollment_id {
        return Ok(0);
    }
    let id = file.enrollment_id.as_str();
    let mut n = 0;
    if let Some(set) = &file.backup {
        for &index in state.used_backup_codes(&set.set_id) {
            let used = BackupUse {
                enrollment_id: id,
                set_id: &set.set_id,
                index,
                refund: None,
                success: None,
            };
            store.consume_backup(user, &used).map_err(Error::State)?;
            n += 1;
        }
    }
    for (name, &step) in &state.last_step {
        let used = TotpUse {
            enrollment_id: id,
            authenticator: name,
            step,
            refund: None,
            success: None,
        };
        store.consume_totp(user, &used).map_err(Error::State)?;
        n += 1;
    }
    for (name, &next) in &state.hotp_next {
        let used = HotpUse {
            enrollment_id: id,
            authenticator: name,
            counter_after: next,
            refund: None,
            success: None,
        };
        store.consume_hotp(user, &used).map_err(Error::State)?;
        n += 1;
    }
    Ok(n)
}
