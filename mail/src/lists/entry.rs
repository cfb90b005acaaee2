//! What a list entry is: the list it is on, the kind of its value, and the entry as stored.

/// Which list an entry is on; the numbers are the peage.v1 `ListName` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListName {
    Block = 1,
    Allow = 2,
}

/// What an entry's value is; the numbers are the peage.v1 `EntryKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    Ip = 1,
    Domain = 2,
    Sender = 3,
    Url = 4,
}

impl ListName {
    pub const ALL: [ListName; 2] = [ListName::Block, ListName::Allow];
    pub fn from_i32(v: i32) -> Option<ListName> {
        ListName::ALL.into_iter().find(|l| *l as i32 == v)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ListName::Block => "block",
            ListName::Allow => "allow",
        }
    }
}

impl EntryKind {
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Ip,
        EntryKind::Domain,
        EntryKind::Sender,
        EntryKind::Url,
    ];
    pub fn from_i32(v: i32) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| *k as i32 == v)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Ip => "ip",
            EntryKind::Domain => "domain",
            EntryKind::Sender => "sender",
            EntryKind::Url => "url",
        }
    }
}

/// One list entry as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: u64,
    pub list: ListName,
    pub kind: EntryKind,
    pub value: String,
    pub reason: String,
    pub author: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl ListEntry {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}
