//! [`LdapStore`]: the [`Store`] contract on a directory server.
//!
//! - A TOTP step or HOTP counter of an enrolled authenticator is spent by one Modify of its
//!   token entry under an Assertion control (`(!(oathTOTPLastTimeStep>=S))`): the server
//!   refuses the second of two racing logins on any host, and slapo-otp, which advances the same
//!   attribute on binds, refuses the code too (and we refuse what it accepted).
//! - Everything else (counters, remembered and trusted hosts, used backup codes, last use) is
//!   the user's [`State`] in `pamTotpState`, changed by one Modify that deletes the value read
//!   and adds the new one: when another host changed it in between, the delete fails (result
//!   16) and the change starts again from the newer value. No read-modify-write without this
//!   compare anywhere.

use crate::conn::{self, Conn, Credentials, fail, rc};
use crate::layout::{self, Account, Kind};
use ldap3::{Mod, Scope};
use pam_totp_core::StoreError;
use pam_totp_core::directory::{DirectoryConfig, escape_filter_value};
use pam_totp_core::error::DirectoryProblem;
use pam_totp_core::secret::TotpSecret;
use pam_totp_core::secret_file::{KeyFor, SecretFile};
use pam_totp_core::state::State;
use pam_totp_core::store::changes::{self, Change};
use pam_totp_core::store::{
    Attempt, BackupUse, Consumed, Counted, HotpUse, Location, Replace, Store, Success, TotpUse,
    Unlocked, UserInfo,
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, TryLockError};
use std::time::Instant;
use zeroize::Zeroizing;

/// Enrollments and login state on a directory server.
pub struct LdapStore {
    cfg: DirectoryConfig,
    who: Credentials,
    /// The connection of this store (one PAM call or one CLI command), opened on first use.
    /// A thread that finds it busy opens its own for that operation.
    conn: Mutex<Option<Conn>>,
    /// The password of [`Credentials::User`], once asked for.
    password: OnceLock<Zeroizing<String>>,
    /// Users' DNs found so far by this store (one PAM call: a login looks its user up once).
    dns: Mutex<HashMap<String, Option<String>>>,
    /// The `pamTotpState` value last read or written by this store, per user entry: the first
    /// compare-and-set of a change starts from it instead of reading again (a stale value only
    /// makes the compare fail, and the change then reads the current one).
    seen: Mutex<HashMap<String, Option<Vec<u8>>>>,
    /// Why connecting failed, once every server was tried (server, problem, detail). Later
    /// operations of this store (the same PAM call or CLI command) fail at once with it rather
    /// than wait for every server's time-out again: a login reads the directory several times,
    /// and its wait must stay about the number of servers times `connect_timeout`.
    unusable: Mutex<Option<(String, DirectoryProblem, String)>>,
}

fn set(v: &[u8]) -> HashSet<Vec<u8>> {
    HashSet::from([v.to_vec()])
}

fn corrupt(dn: &str, error: pam_totp_core::ParseError) -> StoreError {
    StoreError::Corrupt {
        path: PathBuf::from(dn),
        error,
    }
}

impl LdapStore {
    /// A store for `cfg`, binding as `who`. Nothing is connected until the first operation.
    pub fn new(cfg: DirectoryConfig, who: Credentials) -> LdapStore {
        LdapStore {
            cfg,
            who,
            conn: Mutex::new(None),
            password: OnceLock::new(),
            dns: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            unusable: Mutex::new(None),
        }
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let unusable = || self.unusable.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((server, problem, detail)) = unusable().as_ref() {
            return Err(fail(server, *problem, detail.clone()));
        }
        // Not locked while connecting: threads sharing the store connect side by side.
        let result = self.connect_now();
        if let Err(StoreError::Directory {
            server,
            problem,
            detail,
        }) = &result
        {
            *unusable() = Some((server.clone(), *problem, detail.clone()));
        }
        result
    }

    fn connect_now(&self) -> Result<Conn, StoreError> {
        let password = match &self.who {
            Credentials::User { name, ask } => {
                if self.password.get().is_none() {
                    let question = format!("Directory (LDAP) password for {name}: ");
                    let given = ask(&question).unwrap_or_default();
                    let _ = self.password.set(given);
                }
                self.password.get().map(|p| p.as_str())
            }
            _ => None,
        };
        conn::connect(&self.cfg, &self.who, password)
    }

    /// The configuration.
    pub fn config(&self) -> &DirectoryConfig {
        &self.cfg
    }

    /// Runs `f` on this store's connection (opened now if needed), or on a connection of its
    /// own when another thread is using it. A connection that failed is not used again.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = match self.conn.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let mut own = self.connect()?;
                return f(&mut own);
            }
        };
        let conn = match guard.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let mut conn = conn;
        let result = f(&mut conn);
        if !matches!(result, Err(StoreError::Directory { .. })) {
            *guard = Some(conn);
        }
        result
    }

    /// The server in use, after a first operation.
    pub fn server(&self) -> Option<String> {
        self.conn
            .try_lock()
            .ok()
            .and_then(|g| g.as_ref().map(|c| c.server.clone()))
    }

    /// The DN of `user`'s entry; `None` when the directory has none.
    fn user_dn(&self, conn: &mut Conn, user: &str) -> Result<Option<String>, StoreError> {
        let cached = self.dns.lock().ok().and_then(|d| d.get(user).cloned());
        if let Some(dn) = cached {
            return Ok(dn);
        }
        let found = layout::find_user(conn, &self.cfg, user)?;
        if let Ok(mut d) = self.dns.lock() {
            d.insert(user.to_string(), found.clone());
        }
        Ok(found)
    }

    fn require_user_dn(&self, conn: &mut Conn, user: &str) -> Result<String, StoreError> {
        self.user_dn(conn, user)?.ok_or_else(|| {
            fail(
                &conn.server,
                DirectoryProblem::User,
                format!("no entry for user {user} under {}", self.cfg.base),
            )
        })
    }

    /// Makes `cn=pam-totp,U` for state kept before (or without) an enrollment.
    fn create_account(&self, conn: &mut Conn, user_dn: &str) -> Result<(), StoreError> {
        let dn = layout::account_dn(user_dn);
        conn.add(&dn, layout::account_attrs(user_dn))?;
        Ok(())
    }

    /// Remembers the `pamTotpState` value of the user at `user_dn` as last seen.
    fn saw(&self, user_dn: &str, state: Option<&[u8]>) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(user_dn.to_string(), state.map(<[u8]>::to_vec));
        }
    }

    /// Changes the state of the user at `user_dn` with compare-and-set on `pamTotpState`.
    fn update_in<T>(
        &self,
        conn: &mut Conn,
        user_dn: &str,
        mut change: impl FnMut(&mut State) -> Change<T>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let limit = self.cfg.timeout * 2;
        let mut known = self.seen.lock().ok().and_then(|s| s.get(user_dn).cloned());
        loop {
            let (dn, old) = match known.take() {
                Some(old) => (layout::account_dn(user_dn), old),
                None => match layout::read_account(conn, user_dn, false)? {
                    Some(account) => (account.dn, account.state),
                    None => {
                        self.create_account(conn, user_dn)?;
                        continue;
                    }
                },
            };
            let mut state = match &old {
                Some(bytes) => State::parse(bytes).map_err(|e| corrupt(&dn, e))?,
                None => State::new(),
            };
            let value = match change(&mut state) {
                Change::Keep(t) => return Ok(t),
                Change::Commit(t) => t,
            };
            let new = state.to_toml().map_err(|e| {
                fail(
                    &conn.server,
                    DirectoryProblem::Protocol,
                    format!("serialising the state: {e}"),
                )
            })?;
            let (mods, assertion) = match &old {
                Some(old) => (
                    vec![
                        Mod::Delete(layout::STATE.as_bytes().to_vec(), set(old)),
                        Mod::Add(layout::STATE.as_bytes().to_vec(), set(new.as_bytes())),
                    ],
                    None,
                ),
                None => (
                    vec![Mod::Add(
                        layout::STATE.as_bytes().to_vec(),
                        set(new.as_bytes()),
                    )],
                    Some("(!(pamTotpState=*))"),
                ),
            };
            match conn.modify(&dn, mods, assertion)? {
                rc::SUCCESS => {
                    self.saw(user_dn, Some(new.as_bytes()));
                    return Ok(value);
                }
                // Another host changed it first (or the value seen was stale): start again
                // from the current value.
                _ if start.elapsed() < limit => continue,
                _ => return Err(StoreError::Contention(PathBuf::from(&dn))),
            }
        }
    }

    fn update<T>(
        &self,
        user: &str,
        change: impl FnMut(&mut State) -> Change<T>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| {
            let dn = self.require_user_dn(conn, user)?;
            self.update_in(conn, &dn, change)
        })
    }

    /// Spends a step or counter on the authenticator's token entry, `cn=<name>` below
    /// `cn=pam-totp,U`: `Some(spent)`, or `None` when there is no such entry (the state then
    /// decides alone). One Modify, no read: the assertion refuses a step already reached, a
    /// token of another enrollment or of the other kind.
    fn spend_on_token(
        conn: &mut Conn,
        user_dn: &str,
        enrollment_id: &str,
        authenticator: &str,
        kind: Kind,
        value: u64,
    ) -> Result<Option<bool>, StoreError> {
        let (attr, class) = match kind {
            Kind::Totp => (layout::LAST_STEP, "oathTOTPToken"),
            Kind::Hotp => (layout::HOTP_COUNTER, "oathHOTPToken"),
        };
        let assertion = format!(
            "(&(objectClass={class})({}={})(!({attr}>={value})))",
            layout::ENROLLMENT_ID,
            escape_filter_value(enrollment_id)
        );
        let token = layout::token_dn(&layout::account_dn(user_dn), authenticator);
        let rc = conn.modify(
            &token,
            vec![Mod::Replace(
                attr.as_bytes().to_vec(),
                set(value.to_string().as_bytes()),
            )],
            Some(&assertion),
        )?;
        Ok(match rc {
            rc::NO_SUCH_OBJECT => None,
            rc => Some(rc == rc::SUCCESS),
        })
    }

    /// A consume operation: the token entry decides when there is one, else the state.
    fn consume(
        &self,
        user: &str,
        token: Option<(&str, &str, Kind, u64)>,
        refund: Option<&str>,
        success: Option<&Success<'_>>,
        mut spend: impl FnMut(&mut State) -> bool,
    ) -> Result<Consumed, StoreError> {
        self.with_conn(|conn| {
            let dn = self.require_user_dn(conn, user)?;
            if let Some((enrollment_id, authenticator, kind, value)) = token {
                match Self::spend_on_token(conn, &dn, enrollment_id, authenticator, kind, value)? {
                    Some(false) => return Ok(Consumed::AlreadyUsed),
                    Some(true) => {
                        return self.update_in(conn, &dn, |state| {
                            // Bookkeeping only: the token entry decided.
                            spend(state);
                            changes::after_spend(state, true, refund, success)
                        });
                    }
                    None => {}
                }
            }
            self.update_in(conn, &dn, |state| {
                let spent = spend(state);
                changes::after_spend(state, spent, refund, success)
            })
        })
    }

    /// Whether the directory knows the project's schema (a Compare of `pamTotpEnrollmentId`
    /// on `dn` answers "undefined attribute type" without it).
    fn check_schema(conn: &mut Conn, dn: &str) -> Result<(), StoreError> {
        if conn.compare(dn, layout::ENROLLMENT_ID, "-")? == rc::UNDEFINED_ATTRIBUTE_TYPE {
            return Err(fail(
                &conn.server,
                DirectoryProblem::Schema,
                "pamTotpEnrollmentId is unknown to the server",
            ));
        }
        Ok(())
    }
}

/// The state as the tokens and `pamTotpState` together say: the tokens' last steps and
/// counters are the ones slapo-otp and other hosts advanced.
fn merged_state(account: &Account) -> Result<Option<State>, StoreError> {
    let mut state = match &account.state {
        Some(b) => Some(State::parse(b).map_err(|e| corrupt(&account.dn, e))?),
        None => None,
    };
    for t in &account.tokens {
        let Some(c) = t.counter else { continue };
        let (name, value) = match t.kind {
            Kind::Totp if c > 0 => (&t.name, c as u64),
            Kind::Hotp if c >= 0 => (&t.name, c as u64 + 1),
            _ => continue,
        };
        let s = state.get_or_insert_with(State::new);
        if s.enrollment_id != t.enrollment_id {
            s.rebind(&t.enrollment_id);
        }
        let map = match t.kind {
            Kind::Totp => &mut s.last_step,
            Kind::Hotp => &mut s.hotp_next,
        };
        let slot = map.entry(name.clone()).or_insert(0);
        *slot = (*slot).max(value);
    }
    Ok(state)
}

impl Store for LdapStore {
    fn enrollment_location(&self, user: &UserInfo) -> Result<Location, StoreError> {
        self.with_conn(|conn| {
            let dn = match self.user_dn(conn, &user.name)? {
                Some(dn) => layout::account_dn(&dn),
                None => format!("(no entry for {} under {})", user.name, self.cfg.base),
            };
            Ok(Location::new(format!("{dn} on {}", conn.server)))
        })
    }

    fn has_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let Some(dn) = self.user_dn(conn, &user.name)? else {
                return Ok(false);
            };
            Ok(layout::read_account(conn, &dn, false)?.is_some_and(|a| a.data.is_some()))
        })
    }

    fn load_enrollment(&self, user: &UserInfo) -> Result<Option<SecretFile>, StoreError> {
        self.with_conn(|conn| {
            let Some(dn) = self.user_dn(conn, &user.name)? else {
                return Ok(None);
            };
            let account = match layout::read_account(conn, &dn, true)? {
                Some(a) if a.data.is_some() => a,
                _ => {
                    Self::check_schema(conn, &dn)?;
                    return Ok(None);
                }
            };
            self.saw(&dn, account.state.as_deref());
            let data = account.data.as_deref().unwrap_or_default();
            let id = account.enrollment_id.clone().unwrap_or_default();
            if let Some(t) = account
                .tokens
                .iter()
                .find(|t| t.enrollment_id == id && t.secret.is_none())
            {
                // The shipped access rules let only the validators and admins read keys; a
                // user bound as themselves never reads theirs back.
                return Err(fail(
                    &conn.server,
                    DirectoryProblem::Access,
                    format!("the key in {} is not readable with these credentials", t.dn),
                ));
            }
            let keys = |k: &KeyFor| {
                let kind = if k.kind == "hotp" {
                    Kind::Hotp
                } else {
                    Kind::Totp
                };
                account
                    .tokens
                    .iter()
                    .find(|t| t.name == k.name && t.kind == kind && t.enrollment_id == id)
                    .and_then(|t| t.secret.as_ref())
                    .and_then(|s| TotpSecret::from_bytes(s.to_vec()).ok())
            };
            let file =
                SecretFile::parse_without_keys(data, &keys).map_err(|e| corrupt(&account.dn, e))?;
            if file.enrollment_id != id {
                return Err(corrupt(
                    &account.dn,
                    pam_totp_core::ParseError::key(
                        "enrollment_id",
                        "differs from pamTotpEnrollmentId",
                    ),
                ));
            }
            Ok(Some(file))
        })
    }

    fn save_enrollment(
        &self,
        user: &UserInfo,
        file: &SecretFile,
        replace: Replace,
    ) -> Result<Location, StoreError> {
        self.with_conn(|conn| {
            let user_dn = self.require_user_dn(conn, &user.name)?;
            let dn = layout::account_dn(&user_dn);
            let account = layout::read_account(conn, &user_dn, false)?;
            if replace == Replace::No && account.as_ref().is_some_and(|a| a.data.is_some()) {
                return Err(StoreError::Exists(PathBuf::from(&dn)));
            }
            let data = file
                .to_toml_without_keys()
                .map_err(|e| fail(&conn.server, DirectoryProblem::Protocol, e.to_string()))?;
            let id = file.enrollment_id.as_bytes();
            if account.is_none() {
                let mut attrs = layout::account_attrs(&user_dn);
                attrs.push(layout::attr(layout::ENROLLMENT_ID, &[id]));
                attrs.push(layout::attr(layout::ENROLLMENT_DATA, &[data.as_bytes()]));
                conn.add(&dn, attrs)?;
            }
            let existing = account.as_ref().map_or(&[][..], |a| &a.tokens[..]);
            // Tokens of this enrollment that stay keep their last step or counter (a re-save
            // must not make a used code good again); others are replaced.
            for t in existing {
                let keep = file.authenticators.iter().any(|a| {
                    a.name == t.name
                        && t.enrollment_id == file.enrollment_id
                        && (t.kind == Kind::Hotp) == a.hotp.is_some()
                });
                if !keep {
                    conn.delete(&t.dn)?;
                }
            }
            for a in &file.authenticators {
                let tdn = layout::token_dn(&dn, &a.name);
                let kept = existing.iter().any(|t| {
                    t.name == a.name
                        && t.enrollment_id == file.enrollment_id
                        && (t.kind == Kind::Hotp) == a.hotp.is_some()
                });
                let attrs = layout::token_attrs(&tdn, &user_dn, &file.enrollment_id, a);
                if kept {
                    let mods = attrs
                        .into_iter()
                        .filter(|(name, _)| name != b"objectClass" && name != b"cn")
                        .map(|(name, values)| Mod::Replace(name, values))
                        .collect();
                    let rc = conn.modify(&tdn, mods, None)?;
                    if rc != rc::SUCCESS {
                        return Err(fail(
                            &conn.server,
                            DirectoryProblem::Protocol,
                            format!("updating {tdn}: result code {rc}"),
                        ));
                    }
                } else {
                    let (counter, value) = layout::initial_counter(a);
                    let mut attrs = attrs;
                    attrs.push(layout::attr(counter, &[value.as_bytes()]));
                    if conn.add(&tdn, attrs)? != rc::SUCCESS {
                        return Err(fail(
                            &conn.server,
                            DirectoryProblem::Protocol,
                            format!("{tdn} exists"),
                        ));
                    }
                }
            }
            if account.is_some() {
                let rc = conn.modify(
                    &dn,
                    vec![
                        Mod::Replace(layout::ENROLLMENT_ID.as_bytes().to_vec(), set(id)),
                        Mod::Replace(
                            layout::ENROLLMENT_DATA.as_bytes().to_vec(),
                            set(data.as_bytes()),
                        ),
                    ],
                    None,
                )?;
                if rc != rc::SUCCESS {
                    return Err(fail(
                        &conn.server,
                        DirectoryProblem::Protocol,
                        format!("updating {dn}: result code {rc}"),
                    ));
                }
            }
            Ok(Location::new(format!("{dn} on {}", conn.server)))
        })
    }

    fn remove_enrollment(&self, user: &UserInfo) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let Some(user_dn) = self.user_dn(conn, &user.name)? else {
                return Ok(false);
            };
            let Some(account) = layout::read_account(conn, &user_dn, false)? else {
                return Ok(false);
            };
            let had = account.data.is_some();
            for t in &account.tokens {
                conn.delete(&t.dn)?;
            }
            conn.delete(&account.dn)?;
            Ok(had)
        })
    }

    fn state(&self, user: &str) -> Result<Option<State>, StoreError> {
        self.with_conn(|conn| {
            let Some(dn) = self.user_dn(conn, user)? else {
                return Ok(None);
            };
            match layout::read_account(conn, &dn, false)? {
                None => Ok(None),
                Some(a) => {
                    self.saw(&dn, a.state.as_deref());
                    merged_state(&a)
                }
            }
        })
    }

    fn users_with_state(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let found = conn
                .search(
                    &self.cfg.base,
                    Scope::Subtree,
                    "(&(objectClass=pamTotpAccount)(|(pamTotpState=*)(pamTotpEnrollmentData=*)))",
                    &["1.1"],
                )?
                .unwrap_or_default();
            let mut users: Vec<String> = found
                .iter()
                .filter_map(|e| layout::parent(&e.dn).and_then(layout::user_of))
                .collect();
            users.sort();
            users.dedup();
            Ok(users)
        })
    }

    fn record_failure(&self, user: &str, attempt: &Attempt<'_>) -> Result<Counted, StoreError> {
        self.update(user, |state| changes::count_failure(state, attempt))
    }

    fn consume_totp(&self, user: &str, used: &TotpUse<'_>) -> Result<Consumed, StoreError> {
        self.consume(
            user,
            Some((
                used.enrollment_id,
                used.authenticator,
                Kind::Totp,
                used.step,
            )),
            used.refund,
            used.success.as_ref(),
            |state| state.spend_step(used.enrollment_id, used.authenticator, used.step),
        )
    }

    fn consume_hotp(&self, user: &str, used: &HotpUse<'_>) -> Result<Consumed, StoreError> {
        // `oathHOTPCounter` is the last accepted counter, one below the next one expected.
        let last = used.counter_after.saturating_sub(1);
        self.consume(
            user,
            Some((used.enrollment_id, used.authenticator, Kind::Hotp, last)),
            used.refund,
            used.success.as_ref(),
            |state| state.spend_hotp(used.enrollment_id, used.authenticator, used.counter_after),
        )
    }

    fn consume_backup(&self, user: &str, used: &BackupUse<'_>) -> Result<Consumed, StoreError> {
        self.consume(user, None, used.refund, used.success.as_ref(), |state| {
            state.spend_backup_code(used.enrollment_id, used.set_id, used.index)
        })
    }

    fn record_success(&self, user: &str, success: &Success<'_>) -> Result<(), StoreError> {
        self.update(user, |state| {
            changes::apply_success(state, success);
            Change::Commit(())
        })
    }

    fn reset(&self, user: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let Some(dn) = self.user_dn(conn, user)? else {
                return Ok(false);
            };
            let Some(account) = layout::read_account(conn, &dn, false)? else {
                return Ok(false);
            };
            self.saw(&dn, account.state.as_deref());
            match &account.state {
                None => Ok(false),
                Some(bytes) if State::parse(bytes).is_err() => {
                    // An administrator's reset is the way out of a state that does not parse.
                    conn.modify(
                        &account.dn,
                        vec![Mod::Delete(
                            layout::STATE.as_bytes().to_vec(),
                            HashSet::new(),
                        )],
                        None,
                    )?;
                    self.saw(&dn, None);
                    Ok(true)
                }
                Some(_) => self.update_in(conn, &dn, changes::reset),
            }
        })
    }

    fn unlock(&self, user: &str) -> Result<Unlocked, StoreError> {
        self.update(user, changes::unlock)
    }

    fn password_tag(&self, _user: &str) -> String {
        // The password lives in the directory, whose hash this host does not read.
        String::new()
    }

    fn forget_hosts(&self, user: &str) -> Result<usize, StoreError> {
        self.update(user, changes::forget_hosts)
    }
}
