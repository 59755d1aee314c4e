//! Every account of the password database, read in one pass, for reports over all users
//! (`pam-totp status --all`). The module never calls this: it looks up the one user logging in.
//!
//! Looking up each of 100,000 names through NSS costs a full scan of a flat passwd source per
//! name (glibc's files backend and nss_wrapper both scan linearly), 3 min 40 s in the benchmark;
//! one enumeration and a map cost well under a second. The enumeration is `getent passwd`, the
//! C library's own `setpwent`/`getpwent`/`endpwent` loop, run as a child process because this
//! crate has no `unsafe` and nix wraps no `getpwent`: it sees every source `nsswitch.conf`
//! names that can enumerate (files, and LDAP or SSSD where enumeration is on). If it cannot run,
//! `/etc/passwd` is read instead. Names that neither lists (directory users whose backend does not
//! enumerate) are then looked up one by one, which is only the few that have a state file.

use crate::store::UserInfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where `getent` is looked for (an absolute path: the CLI runs as root).
const GETENT: [&str; 2] = ["/usr/bin/getent", "/bin/getent"];
/// The local password file, read when `getent` is not there.
const PASSWD: &str = "/etc/passwd";

/// Accounts by login name.
#[derive(Debug, Default)]
pub struct Accounts {
    by_name: BTreeMap<String, UserInfo>,
}

impl Accounts {
    /// One pass over the password database: `getent passwd`, else `/etc/passwd`, else nothing
    /// (then every name is looked up by [`Accounts::add_by_lookup`]).
    pub fn read() -> Accounts {
        for getent in GETENT.iter().map(Path::new).filter(|p| p.exists()) {
            let out = Command::new(getent)
                .arg("passwd")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            // getent exits 0 when it listed the database (2 would mean a key was not found).
            if let Some(out) = out.ok().filter(|o| o.status.success()) {
                return Accounts::parse(&String::from_utf8_lossy(&out.stdout));
            }
        }
        std::fs::read_to_string(PASSWD)
            .map(|text| Accounts::parse(&text))
            .unwrap_or_default()
    }

    /// Parses passwd(5) lines. Lines that are not 7 fields with numeric ids, and NIS compat
    /// entries (`+`, `-`), are skipped; for a name listed twice the first entry wins, as for
    /// `getpwnam`, which asks the sources in order.
    pub fn parse(text: &str) -> Accounts {
        let mut by_name = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) else {
                continue;
            };
            by_name.entry(f[0].to_string()).or_insert_with(|| UserInfo {
                name: f[0].to_string(),
                uid,
                gid,
                home: PathBuf::from(f[5]),
            });
        }
        Accounts { by_name }
    }

    /// Adds the `names` not listed yet, each looked up through NSS. Names NSS does not know, or
    /// whose lookup fails, are left out and counted in the result (a report lists the others).
    pub fn add_by_lookup(&mut self, names: impl IntoIterator<Item = String>) -> usize {
        let mut missing = 0;
        for name in names {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.by_name.entry(name) {
                match UserInfo::lookup(slot.key()) {
                    Ok(Some(user)) => {
                        slot.insert(user);
                    }
                    Ok(None) | Err(_) => missing += 1,
                }
            }
        }
        missing
    }

    /// The account called `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&UserInfo> {
        self.by_name.get(name)
    }

    /// How many accounts are listed.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The accounts, sorted by name.
    pub fn into_users(self) -> Vec<UserInfo> {
        self.by_name.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_well_formed_entries_first_one_winning() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh\n\
                    alice:x:2000:2000::/elsewhere:/bin/sh\n\
                    +nisuser::::::\n\
                    -excluded::::::\n\
                    short:x:1:1\n\
                    badid:x:one:1::/:/bin/sh\n\
                    :x:5:5::/:/bin/sh\n\
                    extra:x:5:5::/:/bin/sh:more\n";
        let a = Accounts::parse(text);
        assert_eq!(a.len(), 2, "{a:?}");
        let alice = a.get("alice").unwrap();
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.home, PathBuf::from("/home/alice"));
        assert_eq!(a.get("root").unwrap().uid, 0);
        assert!(a.get("badid").is_none() && a.get("+nisuser").is_none());
        let names: Vec<String> = a.into_users().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["alice", "root"]);
    }

    #[test]
    fn read_lists_root_and_lookup_adds_only_known_missing_names() {
        // Every Linux password database has root, whichever way it was read.
        let mut a = Accounts::read();
        assert_eq!(a.get("root").map(|u| u.uid), Some(0));
        let before = a.len();
        let missing = a.add_by_lookup(["root".to_string(), "no-such-user-pam-totp-x".to_string()]);
        assert_eq!((a.len(), missing), (before, 1));
    }

    #[test]
    fn add_by_lookup_fills_in_names_the_listing_missed() {
        let mut a = Accounts::parse("");
        assert!(a.is_empty());
        assert_eq!(a.add_by_lookup(["root".to_string()]), 0);
        assert_eq!(a.get("root").map(|u| (u.uid, u.gid)), Some((0, 0)));
    }
}
