//! QR codes of otpauth URIs as text, shared by the CLI (`pam-totp enroll`, `pam-totp qr`) and
//! the module (enrollment at first login). The `qrcode` crate makes the module matrix; this
//! draws it with UTF-8 half blocks, two module rows per line, with the four-module quiet zone
//! the QR standard asks for.
//!
//! Everything here encodes the key: the matrix and the drawings are returned zeroizing, the
//! `qrcode` crate's own module vector is wiped before it is freed, and every output buffer is
//! allocated at its final size up front, because a `String` that grows leaves copies of what it
//! held in freed memory. (The `qrcode` crate's intermediate buffers, made while it encodes, are
//! out of reach and are not wiped.)

use crate::error::KeyError;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Width of the light border around the code, in modules.
pub const QUIET_ZONE: usize = 4;
const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";
const FULL: char = '\u{2588}';
const UPPER: char = '\u{2580}';
const LOWER: char = '\u{2584}';

/// How [`half_blocks`] gets dark and light modules onto a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ink {
    /// Every line forced to black on white with ANSI colour escapes, dark modules drawn as
    /// blocks: reads the same on dark and light terminals, but only where escapes reach the
    /// terminal (the CLI in a local terminal).
    BlackOnWhite,
    /// No control character at all (only the line feed between lines): the *light* modules and
    /// the quiet zone are the blocks, drawn in the terminal's foreground colour, the dark modules
    /// are left to its background. On a dark theme (light text on a dark background) this is a
    /// code in the standard dark-on-light polarity; on a light theme it shows inverted. What
    /// goes through a PAM conversation to an SSH client uses this: OpenSSH's `ssh` escapes
    /// control characters in keyboard-interactive prompts (docs/ssh.md explains the choice).
    LightBlocks,
}

/// The module matrix of `data` with its quiet zone; `true` is dark. It encodes `data`, so it is
/// zeroized on drop.
///
/// # Errors
/// `data` is too long for a QR code.
pub fn matrix(data: &str) -> Result<Zeroizing<Vec<Vec<bool>>>, KeyError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|_| KeyError::QrTooLong)?;
    let width = code.width();
    let mut colors = code.into_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut rows = Zeroizing::new(Vec::with_capacity(size));
    for y in 0..size {
        let mut row = vec![false; size];
        if (QUIET_ZONE..QUIET_ZONE + width).contains(&y) {
            for x in 0..width {
                row[x + QUIET_ZONE] = colors[(y - QUIET_ZONE) * width + x] == Color::Dark;
            }
        }
        rows.push(row);
    }
    // `Color` is the qrcode crate's and cannot be zeroized; overwrite it and keep the writes
    // from being optimised away as dead stores.
    colors.fill(Color::Light);
    std::hint::black_box(&mut colors);
    Ok(rows)
}

/// Half-block drawing: two module rows per line, see [`Ink`] for the colours.
///
/// # Errors
/// `data` is too long for a QR code.
pub fn half_blocks(data: &str, ink: Ink) -> Result<Zeroizing<String>, KeyError> {
    let rows = matrix(data)?;
    let size = rows.len();
    let lines = size.div_ceil(2);
    let per_line = match ink {
        Ink::BlackOnWhite => BLACK_ON_WHITE.len() + RESET.len(),
        Ink::LightBlocks => 0,
    } + size * FULL.len_utf8()
        + 1;
    // Allocated once at its largest (every cell three bytes): the buffer never moves.
    let mut out = Zeroizing::new(String::with_capacity(lines * per_line));
    for pair in rows.chunks(2) {
        if ink == Ink::BlackOnWhite {
            out.push_str(BLACK_ON_WHITE);
        }
        for x in 0..size {
            let top = pair[0][x];
            // Past the last row: the terminal's background, whatever the ink.
            let bottom = pair.get(1).map(|r| r[x]);
            let (top_ink, bottom_ink) = match ink {
                Ink::BlackOnWhite => (top, bottom == Some(true)),
                Ink::LightBlocks => (!top, bottom == Some(false)),
            };
            out.push(match (top_ink, bottom_ink) {
                (true, true) => FULL,
                (true, false) => UPPER,
                (false, true) => LOWER,
                (false, false) => ' ',
            });
        }
        if ink == Ink::BlackOnWhite {
            out.push_str(RESET);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The key in groups of four characters, for typing by hand.
pub fn grouped_key(base32: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(base32.len() * 5 / 4 + 1));
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

    const URI: &str = "otpauth://totp/host.example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&issuer=host.example";

    /// The drawing turned back into modules: `ink_is_dark` says what the blocks are.
    fn modules(text: &str, ink_is_dark: bool) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let plain = line.replace(BLACK_ON_WHITE, "").replace(RESET, "");
            let top = plain
                .chars()
                .map(|c| matches!(c, FULL | UPPER) == ink_is_dark)
                .collect();
            let bottom = plain
                .chars()
                .map(|c| matches!(c, FULL | LOWER) == ink_is_dark)
                .collect();
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn drawing_has_quiet_zone_and_half_rows() {
        let rows = matrix(URI).unwrap();
        let text = half_blocks(URI, Ink::BlackOnWhite).unwrap();
        assert_eq!(text.lines().count(), rows.len().div_ceil(2));
        assert!(text.starts_with(BLACK_ON_WHITE));
        let back = modules(&text, true);
        assert_eq!(&back[..rows.len()], &rows[..]);
    }

    #[test]
    fn light_blocks_have_no_control_character_and_draw_the_light_modules() {
        let rows = matrix(URI).unwrap();
        let text = half_blocks(URI, Ink::LightBlocks).unwrap();
        assert!(
            text.chars().all(|c| c == '\n' || !c.is_control()),
            "only line feeds: {text:?}"
        );
        assert!(
            text.lines().next().unwrap().chars().all(|c| c == FULL),
            "the quiet zone on top is ink"
        );
        let back = modules(&text, false);
        assert_eq!(&back[..rows.len()], &rows[..]);
        // The half line below an odd number of rows is the terminal's background.
        assert_eq!(rows.len() % 2, 1);
        assert!(text.lines().last().unwrap().chars().all(|c| c == UPPER));
    }

    /// A buffer that grows leaves copies of the key behind in the memory it gave back: every
    /// drawing is allocated once, at a size it never outgrows.
    #[test]
    fn drawings_never_reallocate() {
        for ink in [Ink::BlackOnWhite, Ink::LightBlocks] {
            let text = half_blocks(URI, ink).unwrap();
            let rows = matrix(URI).unwrap().len();
            let lines = rows.div_ceil(2);
            let colour = if ink == Ink::BlackOnWhite {
                BLACK_ON_WHITE.len() + RESET.len()
            } else {
                0
            };
            assert_eq!(text.capacity(), lines * (colour + rows * 3 + 1), "{ink:?}");
        }
        let key = grouped_key("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(key.capacity(), 41);
    }

    #[test]
    fn key_groups() {
        assert_eq!(grouped_key("ABCDEFGHIJ").as_str(), "ABCD EFGH IJ");
    }
}
