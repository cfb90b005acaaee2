//! What every command gets: the options of the command line, a connection to a node of
//! `--addr` made on first use, and the message files a command names.

use std::path::PathBuf;

use peage_client::{connect_any, Access, Admin, ClientError};

pub struct Ctx {
    pub addr: String,
    /// The token, and the cluster CA for https.
    pub access: Access,
    pub json: bool,
    pub stale: bool,
    admin: Option<Admin>,
}

impl Ctx {
    pub fn new(addr: String, access: Access, json: bool, stale: bool) -> Ctx {
        Ctx {
            addr,
            access,
            json,
            stale,
            admin: None,
        }
    }

    /// The admin client, connected on first use to the first of `--addr`'s endpoints that
    /// answers (which `addr` names from then on).
    pub async fn admin(&mut self) -> Result<&mut Admin, ClientError> {
        if self.admin.is_none() {
            let (reached, admin) = connect_any(&self.addr, &self.access).await?;
            self.addr = reached;
            self.admin = Some(admin);
        }
        Ok(self.admin.as_mut().expect("connected just above"))
    }

    /// A failed call, worded with the address it went to.
    pub fn failed(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.addr, status)
    }
}

/// Why the node refused one message file when the refusal is about that message (it is
/// malformed, or larger than the node takes) and the rest of a batch can go on; `None` when
/// it is about the node or the caller (unreachable, no quorum, a bad token), which the rest
/// would meet too.
pub fn refused_message(status: &tonic::Status) -> Option<String> {
    match status.code() {
        tonic::Code::InvalidArgument => Some(status.message().to_owned()),
        // tonic's own words for a request over the server's decoding limit.
        tonic::Code::OutOfRange => Some(format!(
            "larger than the node takes (smtp.max_message_bytes, plus 1 MiB for the request): {}",
            status.message().trim_start_matches("Error, ")
        )),
        _ => None,
    }
}

/// The files named, with each directory replaced by its files (sorted).
pub fn message_files(paths: Vec<PathBuf>) -> Result<Vec<PathBuf>, ClientError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&p)
                .map_err(|e| ClientError::InvalidArgument(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p);
        }
    }
    Ok(files)
}

/// Calls `call` on each item with at most `jobs` calls in flight (over the one HTTP/2
/// connection a cloned client shares), and hands each outcome to `each` in the order of
/// the items — what a reader of the output expects — stopping at its first error.
pub async fn pipelined<I, T, E, Fut>(
    items: impl IntoIterator<Item = I>,
    jobs: usize,
    call: impl Fn(I) -> Fut,
    mut each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut items = items.into_iter();
    let mut window = std::collections::VecDeque::new();
    loop {
        while window.len() < jobs.max(1) {
            let Some(item) = items.next() else { break };
            window.push_back(tokio::spawn(call(item)));
        }
        let Some(oldest) = window.pop_front() else {
            return Ok(());
        };
        match oldest.await {
            Ok(outcome) => each(outcome)?,
            // The call panicked: nothing of ours to report it with; carry on with the rest.
            Err(e) if e.is_panic() => eprintln!("a request failed unexpectedly: {e}"),
            Err(_) => {}
        }
    }
}
