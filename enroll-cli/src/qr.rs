//! Draws the otpauth URI as a QR code in the terminal. The `qrcode` crate makes the module
//! matrix; the drawing is ours: UTF-8 half blocks (two module rows per text row) forced to black
//! on white with ANSI colours, so the code reads the same in dark and light terminals, with the
//! quiet zone of four modules the QR standard asks for. The output holds the key: zeroized.

use crate::cli::QrStyle;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Width of the light border around the code, in modules (ISO/IEC 18004 asks for 4).
pub const QUIET_ZONE: usize = 4;

/// Black text on bright white background.
const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";

/// The module matrix of `data`, quiet zone included: `true` is dark.
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

/// Draws `data` in `style`; empty for [`QrStyle::None`].
///
/// # Errors
/// `data` is too long for a QR code.
pub fn render(data: &str, style: QrStyle) -> Result<Zeroizing<String>, String> {
    let mut out = Zeroizing::new(String::new());
    if style == QrStyle::None {
        return Ok(out);
    }
    let rows = matrix(data)?;
    match style {
        QrStyle::Utf8 => {
            for pair in rows.chunks(2) {
                out.push_str(BLACK_ON_WHITE);
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
                out.push_str(RESET);
                out.push('\n');
            }
        }
        QrStyle::Ansi => {
            for row in &rows {
                for &dark in row {
                    out.push_str(if dark { "\x1b[40m  " } else { "\x1b[107m  " });
                }
                out.push_str(RESET);
                out.push('\n');
            }
        }
        QrStyle::Ascii => {
            for row in &rows {
                for &dark in row {
                    out.push_str(if dark { "##" } else { "  " });
                }
                out.push('\n');
            }
        }
        QrStyle::None => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_blocks_cover_two_rows_each_and_keep_the_quiet_zone() {
        let data = "otpauth://totp/h:u?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let rows = matrix(data).unwrap();
        let text = render(data, QrStyle::Utf8).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len().div_ceil(2));
        let plain: String = lines[0].replace(BLACK_ON_WHITE, "").replace(RESET, "");
        assert_eq!(plain.chars().count(), rows.len());
        assert!(plain.chars().all(|c| c == ' '), "first rows are quiet zone");
        // The finder pattern's top edge: dark from column 4 for 7 modules, in row 4 (line 2, top half).
        let third: Vec<char> = lines[2]
            .replace(BLACK_ON_WHITE, "")
            .replace(RESET, "")
            .chars()
            .collect();
        assert!(
            third[QUIET_ZONE..QUIET_ZONE + 7]
                .iter()
                .all(|&c| c == '\u{2588}' || c == '\u{2580}')
        );
        assert!(render(data, QrStyle::None).unwrap().is_empty());
        let ascii = render(data, QrStyle::Ascii).unwrap();
        assert_eq!(ascii.lines().count(), rows.len());
        assert!(!ascii.contains('\x1b'));
    }
}
