//! Dangerous attachments: executable and script extensions, double extensions
//! (`invoice.pdf.exe`), executables disguised under another name (the content is a
//! Windows or ELF program whatever the name says), ZIP archives that hold any of these (in
//! inner archives too, inflated within a bound), macro-enabled Office files.

/// The findings that say a message carries code (a double extension alone does not).
pub const MALWARE: &[&str] = &[
    "EXECUTABLE_ATTACHMENT",
    "ARCHIVE_WITH_EXECUTABLE",
    "EXECUTABLE_DISGUISED",
    "MACRO_OFFICE_DOCUMENT",
];

/// Extensions that run code when opened on a desktop.
const EXECUTABLE: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh", "hta",
    "msi", "msp", "ps1", "psm1", "jar", "lnk", "cpl", "reg", "dll", "iso", "img", "vhd",
];
/// Office formats that carry macros.
const MACRO_OFFICE: &[&str] = &[
    "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam", "sldm",
];
/// Extensions a double-extension lure hides behind.
const DOCUMENT: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "txt", "jpg", "jpeg", "png", "zip", "rtf",
];

fn extension(name: &str) -> Option<String> {
    let n = name.trim().trim_end_matches(['.', ' ']);
    n.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
}

fn is_executable(name: &str) -> bool {
    extension(name).is_some_and(|e| EXECUTABLE.contains(&e.as_str()))
}

/// Reports each finding through `found(symbol_name, reason)`.
pub fn check(name: &str, contents: &[u8], found: &mut dyn FnMut(&str, String)) {
    if is_executable(name) {
        found(
            "EXECUTABLE_ATTACHMENT",
            format!("attachment {name} is executable"),
        );
        let stem = name.trim().rsplit_once('.').map_or("", |(s, _)| s);
        if extension(stem).is_some_and(|e| DOCUMENT.contains(&e.as_str())) {
            found(
                "DOUBLE_EXTENSION",
                format!("attachment {name} hides its type"),
            );
        }
    }
    if extension(name).is_some_and(|e| MACRO_OFFICE.contains(&e.as_str())) {
        found(
            "MACRO_OFFICE_DOCUMENT",
            format!("attachment {name} may carry macros"),
        );
    }
    if !is_executable(name) && is_program(contents) {
        found(
            "EXECUTABLE_DISGUISED",
            format!("attachment {name} is a program under another name"),
        );
    }
    if contents.starts_with(b"PK\x03\x04") || extension(name).as_deref() == Some("zip") {
        let mut inner_archives = INNER_ARCHIVES;
        if let Some(inner) = executable_inside(contents, 1, &mut inner_archives) {
            found(
                "ARCHIVE_WITH_EXECUTABLE",
                format!("archive {name} holds {inner}"),
            );
        }
    }
}

/// Inner archives opened per attachment, how deep, and what each may inflate to: enough for
/// the zip inside a zip that malware mail sends, bounded against zip bombs.
const INNER_ARCHIVES: usize = 8;
const NESTING: usize = 3;
const INFLATED_LIMIT: usize = 4 << 20;

/// What in the ZIP `data` is a program, as `inner.zip/setup.exe`, looking into the archives
/// it holds (`depth` counts the archives opened so far, `inner_archives` those left to open).
fn executable_inside(data: &[u8], depth: usize, inner_archives: &mut usize) -> Option<String> {
    let entries = zip_entries(data);
    if let Some(inner) = entries.iter().find(|e| is_executable(&e.name)) {
        return Some(inner.name.clone());
    }
    if let Some(inner) = entries.iter().find(|e| e.stored_program) {
        return Some(format!("{}, a program under another name", inner.name));
    }
    if depth >= NESTING {
        return None;
    }
    for entry in entries
        .iter()
        .filter(|e| extension(&e.name).as_deref() == Some("zip"))
    {
        if *inner_archives == 0 {
            return None;
        }
        *inner_archives -= 1;
        let Some(inner) = entry.inflate(data) else {
            continue;
        };
        if let Some(found) = executable_inside(&inner, depth + 1, inner_archives) {
            return Some(format!("{}/{found}", entry.name));
        }
    }
    None
}

/// Whether bytes are a program: an ELF binary, or a Windows executable (the "MZ" header
/// whose offset at 0x3c points at the "PE" signature: text that merely starts with "MZ" is not).
fn is_program(contents: &[u8]) -> bool {
    if contents.starts_with(b"\x7fELF") {
        return true;
    }
    let Some(offset) = contents.get(0x3c..0x40) else {
        return false;
    };
    let pe = u32::from_le_bytes([offset[0], offset[1], offset[2], offset[3]]) as usize;
    contents.starts_with(b"MZ") && contents.get(pe..pe.saturating_add(4)) == Some(b"PE\0\0")
}

/// One file in a ZIP archive.
pub(super) struct ZipEntry {
    name: String,
    /// Stored uncompressed, and a program whatever its name.
    stored_program: bool,
    /// How its data is compressed (8: deflated), and where its data is in the archive when
    /// the header gives its size.
    method: u16,
    data: Option<std::ops::Range<usize>>,
}

impl ZipEntry {
    /// Its bytes inflated, from the `archive` it was read from, when deflated and no larger
    /// than `INFLATED_LIMIT`. A stored entry needs no opening: its headers are in the
    /// archive's own bytes, which `zip_entries` already reads whole.
    fn inflate(&self, archive: &[u8]) -> Option<Vec<u8>> {
        let data = archive.get(self.data.clone()?)?;
        (self.method == 8)
            .then(|| miniz_oxide::inflate::decompress_to_vec_with_limit(data, INFLATED_LIMIT).ok())
            .flatten()
    }
}

/// The files of a ZIP archive, read from its local file headers (bounded, never panics;
/// nothing is decompressed).
pub(super) fn zip_entries(data: &[u8]) -> Vec<ZipEntry> {
    let mut names = Vec::new();
    let mut i = 0usize;
    while names.len() < 1000 {
        let Some(pos) = data[i..].windows(4).position(|w| w == b"PK\x03\x04") else {
            break;
        };
        let h = i + pos;
        let (Some(len_bytes), Some(extra_bytes)) =
            (data.get(h + 26..h + 28), data.get(h + 28..h + 30))
        else {
            break;
        };
        let name_len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let extra_len = u16::from_le_bytes([extra_bytes[0], extra_bytes[1]]) as usize;
        let Some(name) = data.get(h + 30..h + 30 + name_len) else {
            break;
        };
        let method = data
            .get(h + 8..h + 10)
            .map_or(u16::MAX, |m| u16::from_le_bytes([m[0], m[1]]));
        // With flag bit 3 the sizes come after the data, and the header's are zero.
        let size = data
            .get(h + 18..h + 22)
            .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
        i = h + 30 + name_len + extra_len;
        names.push(ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            stored_program: method == 0 && data.get(i..).is_some_and(is_program),
            method,
            data: (size > 0).then(|| i..i.saturating_add(size)),
        });
        if i >= data.len() {
            break;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One ZIP local file entry holding `data`, deflated or stored.
    fn entry(name: &str, data: &[u8], deflate: bool) -> Vec<u8> {
        let body = if deflate {
            miniz_oxide::deflate::compress_to_vec(data, 6)
        } else {
            data.to_vec()
        };
        let mut z = b"PK\x03\x04".to_vec();
        z.extend_from_slice(&[20, 0, 0, 0]); // version, flags
        z.extend_from_slice(&(if deflate { 8u16 } else { 0 }).to_le_bytes());
        z.extend_from_slice(&[0; 8]); // time, date, crc
        z.extend_from_slice(&(body.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&body);
        z
    }

    fn findings(name: &str, contents: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        check(name, contents, &mut |symbol, why| {
            out.push(format!("{symbol}: {why}"))
        });
        out
    }

    /// Zips `inner` `depth` times over, each layer deflated (with a text beside it, so that
    /// deflate compresses rather than stores: a stored block would show the inner headers
    /// to the scan of the outer archive's bytes).
    fn nested(inner: Vec<u8>, depth: usize) -> Vec<u8> {
        (0..depth).fold(inner, |z, _| {
            let mut layer = entry("readme.txt", &b"a".repeat(4096), false);
            layer.extend(z);
            entry("inner.zip", &layer, true)
        })
    }

    #[test]
    fn an_executable_in_a_deflated_inner_archive_is_found_and_a_photo_is_not() {
        let exe = entry("setup.exe", b"MZ", true);
        assert_eq!(
            findings("outer.zip", &nested(exe.clone(), 1)),
            ["ARCHIVE_WITH_EXECUTABLE: archive outer.zip holds inner.zip/setup.exe"]
        );
        let found = findings("outer.zip", &nested(exe.clone(), 2));
        assert!(
            found[0].ends_with("holds inner.zip/inner.zip/setup.exe"),
            "{found:?}"
        );
        let past = findings("outer.zip", &nested(exe.clone(), 3));
        assert!(past.is_empty(), "past the nesting bound: {past:?}");
        // A stored inner archive is read in place, and the deflated one inside it inflated.
        let stored = entry("stored.zip", &nested(exe.clone(), 1), false);
        let found = findings("outer.zip", &stored);
        assert!(found[0].ends_with("holds inner.zip/setup.exe"), "{found:?}");
        let photo = entry("photo.jpg", b"\xff\xd8\xff", true);
        assert!(findings("outer.zip", &nested(photo, 1)).is_empty());
    }

    /// An inner archive that inflates past the bound is not opened: a zip bomb costs no more
    /// than the bound.
    #[test]
    fn an_inner_archive_past_the_inflated_limit_is_left_closed() {
        let mut bomb = entry("zeros.bin", &vec![0; INFLATED_LIMIT + 1], false);
        bomb.extend(entry("setup.exe", b"MZ", false));
        assert!(findings("outer.zip", &nested(bomb.clone(), 1)).is_empty());
        bomb.truncate(INFLATED_LIMIT / 2);
        // Cut short: whatever it says, reading it never panics.
        findings("outer.zip", &nested(bomb, 1));
    }
}
