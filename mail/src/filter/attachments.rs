//! Dangerous attachments: executable and script extensions, double extensions
//! (`invoice.pdf.exe`), ZIP archives that hold such files, macro-enabled Office files.

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
    if contents.starts_with(b"PK\x03\x04") || extension(name).as_deref() == Some("zip") {
        for inner in zip_names(contents) {
            if is_executable(&inner) {
                found(
                    "ARCHIVE_WITH_EXECUTABLE",
                    format!("archive {name} holds {inner}"),
                );
                break;
            }
        }
    }
}

/// File names in a ZIP archive, read from its local file headers (bounded, never panics;
/// nothing is decompressed).
pub fn zip_names(data: &[u8]) -> Vec<String> {
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
        names.push(String::from_utf8_lossy(name).into_owned());
        i = h + 30 + name_len + extra_len;
        if i >= data.len() {
            break;
        }
    }
    names
}
