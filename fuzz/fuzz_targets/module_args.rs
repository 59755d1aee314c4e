//! Module arguments (`argv` of the PAM line), merged over an empty configuration file and
//! validated by `config::load`, as the module does on every call. One argument per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// An empty configuration file owned by the fuzzing user, so `load` gets past reading it.
fn empty_config() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pam-totp-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("pam_totp.conf");
        std::fs::write(&path, "# empty\n").expect("config file");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split('\n').collect();
    if let Ok(config) = pam_totp_core::config::load(&args, Some(empty_config())) {
        assert!(config.window <= pam_totp_core::config::MAX_WINDOW);
        assert!(config.allowed_perm <= 0o777);
        assert!(config.state_dir.is_absolute());
        let _ = config.describe();
    }
});
