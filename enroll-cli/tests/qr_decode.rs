//! The terminal QR code read back by a real decoder (zbarimg, Debian package zbar-tools): the
//! drawing of each style is turned into an image and must decode to the otpauth URI of the key.

mod common;

use common::*;

#[test]
fn given_each_qr_style_then_zbar_decodes_the_otpauth_uri() {
    let dir = TempDir::new("qr");
    let secret = dir.path().join("s.toml");
    let conf = dir.config(&format!("secret = \"{}\"\n", secret.display()));
    let conf = conf.to_str().unwrap();
    let o = run(
        &[
            "--config",
            conf,
            "enroll",
            "--json",
            "--issuer",
            "Example Corp",
            "--label",
            "alice@example.org",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let uri = v["otpauth_uri"].as_str().unwrap();
    for style in ["utf8", "ansi", "ascii"] {
        let o = run(&["--config", conf, "qr", &format!("--qr={style}")], "");
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let drawn = qr_lines(&out);
        assert_eq!(decode_qr(&drawn, dir.path()), uri, "style {style}");
        let key = v["secret"].as_str().unwrap();
        let grouped: Vec<String> = key
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert!(out.contains(&grouped.join(" ")), "key in groups of four");
        assert!(
            out.contains("Issuer:  Example Corp") && out.contains("Account: alice@example.org")
        );
    }
    // utf8: two module rows per text row, so half as many lines as the ascii drawing.
    let utf8 = qr_lines(&stdout(&run(&["--config", conf, "qr", "--qr=utf8"], "")));
    let ascii = qr_lines(&stdout(&run(&["--config", conf, "qr", "--qr=ascii"], "")));
    assert_eq!(utf8.lines().count(), ascii.lines().count().div_ceil(2));
    assert!(
        utf8.lines()
            .all(|l| l.starts_with("\x1b[30;107m") && l.ends_with("\x1b[0m")),
        "black on white"
    );
    let none = stdout(&run(&["--config", conf, "qr", "--qr=none"], ""));
    assert!(!none.contains('\x1b') && !none.contains('#'));
}
