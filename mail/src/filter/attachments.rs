//! Dangerous attachments: executable and script extensions, double extensions
//! (`invoice.pdf.exe`), executables disguised under another name (the content is a
//! Windows or ELF program whatever the name says), ZIP archives that hold any of these,
//! macro-enabled Office files.

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
        let entries = zip_entries(contents);
        if let Some(inner) = entries.iter().find(|e| is_executable(&e.name)) {
            found(
                "ARCHIVE_WITH_EXECUTABLE",
                format!("archive {name} holds {}", inner.name),
            );
        } else if let Some(inner) = entries.iter().find(|e| e.stored_program) {
            found(
                "ARCHIVE_WITH_EXECUTABLE",
                format!(
                    "archive {name} holds {}, a program under another name",
                    inner.name
                ),
            );
        }
    }
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
        let stored = data.get(h + 8..h + 10) == Some(&[0, 0]);
        i = h + 30 + name_len + extra_len;
        names.push(ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            stored_program: stored && data.get(i..).is_some_and(is_program),
        });
        if i >= data.len() {
            break;
        }
    }
    names
}
