//! Draws the otpauth URI as a QR code in the terminal, in the style asked for. The module
//! matrix, the UTF-8 half-block drawing and the grouped key come from `pam_totp_core::qr`, the
//! same code the module uses for enrollment at login; the CLI adds its plainer styles (two
//! coloured spaces per module, `##` ASCII) on top of that matrix. The output holds the key:
//! zeroized, and allocated once at its final size (a growing buffer leaves copies behind).

use crate::cli::QrStyle;
use pam_totp_core::qr;
use zeroize::Zeroizing;

pub use pam_totp_core::qr::{QUIET_ZONE, grouped_key, matrix};

const RESET: &str = "\x1b[0m";

/// Draws `data` in `style`; empty for [`QrStyle::None`].
///
/// # Errors
/// `data` is too long for a QR code.
pub fn render(data: &str, style: QrStyle) -> Result<Zeroizing<String>, pam_totp_core::KeyError> {
    let (dark, light, end) = match style {
        QrStyle::None => return Ok(Zeroizing::new(String::new())),
        // Forced black on white, so the code reads the same in dark and light terminals.
        QrStyle::Utf8 => return qr::half_blocks(data, qr::Ink::BlackOnWhite),
        QrStyle::Ansi => ("\x1b[40m  ", "\x1b[107m  ", RESET),
        QrStyle::Ascii => ("##", "  ", ""),
    };
    let rows = matrix(data)?;
    let per_line = rows.len() * dark.len().max(light.len()) + end.len() + 1;
    let mut out = Zeroizing::new(String::with_capacity(rows.len() * per_line));
    for row in rows.iter() {
        for &module in row {
            out.push_str(if module { dark } else { light });
        }
        out.push_str(end);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK_ON_WHITE: &str = "\x1b[30;107m";

    #[test]
    fn half_blocks_cover_two_rows_each_and_keep_the_quiet_zone() {
        let data = "otpauth://totp/h:u?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let rows = matrix(data).unwrap();
        let text = render(data, QrStyle::Utf8).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len().div_ceil(2));
        assert!(lines[0].starts_with(BLACK_ON_WHITE) && lines[0].ends_with(RESET));
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
    }

    /// The drawings hold the key: allocated once, never grown (growth leaves copies behind).
    #[test]
    fn drawings_are_allocated_once() {
        let data = "otpauth://totp/h:u?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let size = matrix(data).unwrap().len();
        let ascii = render(data, QrStyle::Ascii).unwrap();
        assert_eq!(ascii.capacity(), size * (size * 2 + 1));
        assert_eq!(ascii.len(), ascii.capacity());
        let ansi = render(data, QrStyle::Ansi).unwrap();
        assert_eq!(
            ansi.capacity(),
            size * (size * "\x1b[107m  ".len() + RESET.len() + 1)
        );
    }

    #[test]
    fn ansi_and_ascii_draw_two_cells_per_module_of_the_core_matrix() {
        let data = "otpauth://totp/h:u?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let rows = matrix(data).unwrap();
        let ascii = render(data, QrStyle::Ascii).unwrap();
        assert!(!ascii.contains('\x1b'));
        let back: Vec<Vec<bool>> = ascii
            .lines()
            .map(|l| l.as_bytes().chunks(2).map(|c| c == b"##").collect())
            .collect();
        assert_eq!(back, *rows);
        let ansi = render(data, QrStyle::Ansi).unwrap();
        assert_eq!(ansi.lines().count(), rows.len());
        assert_eq!(
            ansi.lines().next().unwrap().matches("\x1b[107m  ").count(),
            rows.len(),
            "top quiet zone all light"
        );
    }
}
