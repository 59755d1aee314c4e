//! QR codes as tests see them: a grid of modules turned into a PBM image, and zbarimg reading
//! it. Used by the CLI tests (drawings in a terminal) and the SSH tests (an `ssh` transcript).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PBM image of `rows` (`true` is dark), `scale` pixels per module, with a `margin` of
/// modules around it, dark or light as `margin_dark` says.
pub fn pbm(rows: &[Vec<bool>], margin: usize, margin_dark: bool, scale: usize) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0) + 2 * margin;
    let height = rows.len() + 2 * margin;
    let mut out = format!("P1\n{} {}\n", width * scale, height * scale);
    for y in 0..height {
        let mut line = String::with_capacity(width * scale * 2);
        for x in 0..width {
            let dark = if y < margin || y >= margin + rows.len() || x < margin {
                margin_dark
            } else {
                rows[y - margin]
                    .get(x - margin)
                    .copied()
                    .unwrap_or(margin_dark)
            };
            for _ in 0..scale {
                line.push(if dark { '1' } else { '0' });
                line.push(' ');
            }
        }
        for _ in 0..scale {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Decodes the QR code in the PBM image `pbm` with zbarimg; `also_inverted` lets zbar try the
/// inverted image too (`-Stest-inverted`), as phone scanners that read light-on-dark codes do.
/// `None` when zbar finds no code.
///
/// # Panics
/// zbarimg is not installed, or the image cannot be written in `dir`.
pub fn zbar_decode(pbm: &str, dir: &Path, also_inverted: bool) -> Option<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let image = dir.join(format!(
        "qr-{}-{}.pbm",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&image, pbm).unwrap_or_else(|e| panic!("cannot write {}: {e}", image.display()));
    let mut cmd = Command::new("zbarimg");
    cmd.args(["--raw", "-q"]);
    if also_inverted {
        cmd.arg("-Stest-inverted");
    }
    let out = cmd
        .arg(&image)
        .output()
        .expect("zbarimg (Debian package zbar-tools) is installed");
    let _ = std::fs::remove_file(&image);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}
