//! QR codes of otpauth URIs as text, shared by the CLI (`pam-totp enroll`, `pam-totp qr`) and
//! the module (enrollment at first login). The `qrcode` crate makes the module matrix; this
//! draws it with UTF-8 half blocks, two module rows per line, with the four-module quiet zone
//! the QR standard asks for. The output encodes the key: it is returned zeroizing.

use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Width of the light border around the code, in modules.
pub const QUIET_ZONE: usize = 4;
const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";

/// The module matrix of `data` with its quiet zone; `true` is dark.
///
/// # Errors
/// `data` is too long for a QR code.
pub fn matrix(data: &str) -> Result<Vec<Vec<bool>>, String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| e.to_string())?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut rows = vec![vec![false; size]; size];
    for y in 0..width {
        for x in 0..width {
            rows[y + QUIET_ZONE][x + QUIET_ZONE] = colors[y * width + x] == Color::Dark;
        }
    }
    Ok(rows)
}

/// Half-block drawing. With `ansi`, each line is forced to black on white so the code reads the
/// same in dark and light terminals; without, dark modules are drawn as blocks.
///
/// # Errors
/// `data` is too long for a QR code.
pub fn half_blocks(data: &str, ansi: bool) -> Result<Zeroizing<String>, String> {
    let rows = matrix(data)?;
    let mut out = Zeroizing::new(String::new());
    for pair in rows.chunks(2) {
        if ansi {
            out.push_str(BLACK_ON_WHITE);
        }
        for x in 0..pair[0].len() {
            let top = pair[0][x];
            let bottom = pair.get(1).is_some_and(|r| r[x]);
            out.push(match (top, bottom) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        if ansi {
            out.push_str(RESET);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The key in groups of four characters, for typing by hand.
pub fn grouped_key(base32: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(base32.len() * 5 / 4));
    for (i, c) in base32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_has_quiet_zone_and_half_rows() {
        let rows = matrix("otpauth://totp/x?secret=AAAA").unwrap();
        let text = half_blocks("otpauth://totp/x?secret=AAAA", false).unwrap();
        assert_eq!(text.lines().count(), rows.len().div_ceil(2));
        assert!(
            text.lines().next().unwrap().chars().all(|c| c == ' '),
            "quiet zone on top"
        );
        assert!(half_blocks("x", true).unwrap().starts_with(BLACK_ON_WHITE));
    }

    #[test]
    fn key_groups() {
        assert_eq!(grouped_key("ABCDEFGHIJ").as_str(), "ABCD EFGH IJ");
    }
}
