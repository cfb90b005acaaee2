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
    /// Whose entry it is: empty for the cluster's; a domain for its recipients and its
    /// subdomains' (a domain admin's own list); an address for that mailbox alone.
    pub scope: String,
}

impl ListEntry {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }

    /// Whether the entry counts for mail to all of `recipients` (normalised addresses):
    /// a cluster-wide entry always; a scoped one only when every recipient is within its
    /// scope, so that one domain's list never decides another domain's mail.
    pub fn applies_to(&self, recipients: &[String]) -> bool {
        self.scope.is_empty()
            || (!recipients.is_empty() && recipients.iter().all(|r| in_scope(&self.scope, r)))
    }
}

/// Whether `recipient` is within `scope`: the mailbox itself, or an address of the domain
/// or of one of its subdomains. Both are normalised (lower-case domains).
pub fn in_scope(scope: &str, recipient: &str) -> bool {
    if scope.contains('@') {
        return scope.eq_ignore_ascii_case(recipient);
    }
    let Some((_, domain)) = recipient.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    domain == scope
        || domain
            .strip_suffix(scope)
            .is_some_and(|head| head.ends_with('.'))
}
