//! `pam-totp enroll --json`: the non-interactive enrollment of the module issue, its JSON shape,
//! file mode and owner, and its refusals.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "pam-totp failed: {}\n{}",
        stderr(o),
        stdout(o)
    );
    serde_json::from_slice(&o.stdout).expect("stdout is JSON")
}

#[test]
fn given_root_and_user_then_file_owned_by_user_and_json_complete() {
    if !root_or_skip("given_root_and_user_then_file_owned_by_user_and_json_complete") {
        return;
    }
    let dir = TempDir::new("json-user");
    let conf = dir.config("");
    let user = TestUser::create();
    let conf_s = conf.to_str().unwrap();
    let o = run(
        &[
            "--config",
            conf_s,
            "enroll",
            "--json",
            "--user",
            &user.name,
            "--issuer",
            "Example Corp",
            "--digits",
            "8",
            "--algorithm",
            "SHA256",
            "--period",
            "60",
            "--backup-codes",
            "4",
        ],
        "",
    );
    let v = json(&o);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "backup_codes",
            "otpauth_uri",
            "secret",
            "secret_file",
            "user"
        ],
        "exactly the contract's keys"
    );
    assert_eq!(v["user"], user.name.as_str());
    let path = user.secret_path();
    assert_eq!(v["secret_file"], path.to_str().unwrap());
    let secret = v["secret"].as_str().unwrap();
    assert_eq!(base32_decode(secret).len(), 20, "160-bit key");
    assert_eq!(
        v["otpauth_uri"].as_str().unwrap(),
        format!(
            "otpauth://totp/Example%20Corp:{}?secret={secret}&algorithm=SHA256&digits=8&period=60&issuer=Example%20Corp",
            user.name
        )
    );
    let codes = v["backup_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 4);
    for c in codes {
        let c = c.as_str().unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
    }
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), user.uid, "owned by the user");
    let dir_meta = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(dir_meta.uid(), user.uid, "directory made as the user");
    // The file parses, holds the key, and its backup codes are only hashes.
    let text = std::fs::read_to_string(&path).unwrap();
    for c in codes {
        assert!(!text.contains(c.as_str().unwrap()), "backup code in clear");
    }
    let file = pam_totp_core::secret_file::SecretFile::parse(text.as_bytes()).unwrap();
    assert_eq!(file.authenticators[0].digits, 8);
    assert_eq!(file.authenticators[0].period, 60);
    assert_eq!(file.authenticators[0].secret.to_base32().as_str(), secret);
    let set = file.backup.as_ref().unwrap();
    let norm = pam_totp_core::backup::normalize(codes[2].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(set.find(&norm), Some(2));
}

#[test]
fn given_config_user_identity_then_file_owned_by_that_identity() {
    if !root_or_skip("given_config_user_identity_then_file_owned_by_that_identity") {
        return;
    }
    let dir = TempDir::new("json-identity");
    let owner = TestUser::create();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    nix::unistd::chown(&secrets, Some(nix::unistd::Uid::from_raw(owner.uid)), None).unwrap();
    let conf = dir.config(&format!(
        "secret = \"{}/${{USER}}.toml\"\nuser = \"{}\"\n",
        secrets.display(),
        owner.name
    ));
    let user = TestUser::create();
    let v = json(&run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--json",
            "--user",
            &user.name,
        ],
        "",
    ));
    let path = secrets.join(format!("{}.toml", user.name));
    assert_eq!(v["secret_file"], path.to_str().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), owner.uid);
    assert_eq!(
        v["backup_codes"].as_array().unwrap().len(),
        10,
        "default count"
    );
}

#[test]
fn given_existing_file_then_refused_without_force_and_replaced_with_it() {
    let dir = TempDir::new("json-force");
    let conf = dir.config("");
    let file = dir.path().join("s.toml");
    let args = |force: bool| {
        let mut a = vec![
            "--config".to_string(),
            conf.display().to_string(),
            "enroll".into(),
            "--json".into(),
            "--secret-file".into(),
            file.display().to_string(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let first = args(false);
    let v1 = json(&run(
        &first.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "",
    ));
    let before = std::fs::read(&file).unwrap();
    let o = run(&first.iter().map(|s| s.as_str()).collect::<Vec<_>>(), "");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        format!(
            "Error: {} already exists.\nUse --force to replace it (the old key and backup codes stop working).\n",
            file.display()
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), before, "untouched");
    let forced = args(true);
    let v2 = json(&run(
        &forced.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "",
    ));
    assert_ne!(v1["secret"], v2["secret"]);
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 2, "config and secret only, no temporary files");
}

#[test]
fn given_not_root_with_user_then_clear_refusal() {
    if !root_or_skip("given_not_root_with_user_then_clear_refusal") {
        return;
    }
    let dir = TempDir::new("json-notroot");
    let conf = dir.config("");
    let o = run_as(
        "nobody",
        &[
            "--config",
            conf.to_str().unwrap(),
            "enroll",
            "--json",
            "--user",
            "root",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        "Error: Only root may act for another user: you are `nobody` and asked for `root`.\n\
         Run it as root (sudo pam-totp ... --user root), or leave --user out to act on your own enrollment.\n"
    );
}
