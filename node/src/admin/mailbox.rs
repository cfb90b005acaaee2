//! What a mailbox owner does through the portal, within that one mailbox
//! (`Scope::mailbox`): its quarantined mail, a message's body, releasing (and teaching the
//! classifier it was wanted), deleting, allowing or blocking a sender for itself. The rules
//! are the admin API's own rooms'; every change is recorded in the audit log as
//! `mailbox:<address>`, role `mailbox`. The portal's signing key is made here when the first
//! link needs it.

use std::time::Duration;

use mail_parser::MessageParser;
use rand::RngCore;
use tonic::Status;

use peage_mail::lists::normalize_scope;
use peage_proto::v1::{
    command, EntryKind, ListAddRequest, ListName, MessageRef, MessageShowReply, PortalKeySet,
    PortalLinkReply, PortalLinkRequest, QueueListRequest, QueuedMessage,
};

use super::auth::{Caller, Scope};
use super::service::AdminService;
use super::validate::invalid;
use super::{lists, messages};
use crate::clock::now_ms;
use crate::signed_links::{self, Purpose};
use crate::spool::bodies::body_of;
use crate::state::portal_key::KEY_BYTES;
use crate::state::spool::SpooledMessage;
use crate::state::tokens::Role;
use crate::state::DigestLang;

/// What a mailbox owner may do to one of its quarantined messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxAction {
    Release,
    /// Release, and teach the classifier the message was ham.
    ReleaseAndLearn,
    Delete,
    /// Allow the message's sender, for this mailbox only.
    AllowSender,
    /// Block the message's sender, for this mailbox only.
    BlockSender,
}

impl MailboxAction {
    pub const ALL: [MailboxAction; 5] = [
        MailboxAction::Release,
        MailboxAction::ReleaseAndLearn,
        MailboxAction::Delete,
        MailboxAction::AllowSender,
        MailboxAction::BlockSender,
    ];

    /// The action's name in the portal's URLs and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxAction::Release => "release",
            MailboxAction::ReleaseAndLearn => "release-learn",
            MailboxAction::Delete => "delete",
            MailboxAction::AllowSender => "allow-sender",
            MailboxAction::BlockSender => "block-sender",
        }
    }

    pub fn parse(word: &str) -> Option<MailboxAction> {
        MailboxAction::ALL.into_iter().find(|a| a.as_str() == word)
    }
}

/// The most a link may be good for.
const MAX_LINK_SECS: u64 = 90 * 86_400;

/// A signed link to `r.mailbox`'s quarantine, for a caller whose scope covers it.
pub async fn link(
    svc: &AdminService,
    caller: Caller,
    r: PortalLinkRequest,
) -> Result<PortalLinkReply, Status> {
    let mailbox = mailbox_in_scope(&caller, &r.mailbox)?;
    let valid = match r.valid_secs {
        0 => svc.link_validity,
        s if s > MAX_LINK_SECS => {
            return Err(invalid(format!(
                "a link is good for at most {} days",
                MAX_LINK_SECS / 86_400
            )))
        }
        s => Duration::from_secs(s),
    };
    let (url, expires_at_ms) = svc.mailbox_link(&mailbox, valid).await?;
    Ok(PortalLinkReply { url, expires_at_ms })
}

/// A mailbox address as a request names it, normalised, when the caller's scope covers it.
pub(super) fn mailbox_in_scope(caller: &Caller, raw: &str) -> Result<String, Status> {
    let mailbox = normalize_scope(raw)
        .ok()
        .filter(|m| m.contains('@'))
        .ok_or_else(|| invalid(format!("`{raw}` is not a mailbox address")))?;
    match caller.scope.covers_address(&mailbox) {
        true => Ok(mailbox),
        false => Err(caller.scope.outside(&mailbox)),
    }
}

impl AdminService {
    /// `FAILED_PRECONDITION` unless the mailbox's domain has the portal turned on.
    pub(super) fn portal_open(&self, mailbox: &str) -> Result<(), Status> {
        let domain = mailbox.rsplit_once('@').map_or("", |(_, d)| d);
        let indexes = self.cluster.state().indexes();
        if indexes.verify_of(domain).is_none() {
            return Err(Status::failed_precondition(format!(
                "{domain} is not a local domain"
            )));
        }
        match indexes.portal_on(domain) {
            true => Ok(()),
            false => Err(Status::failed_precondition(format!(
                "the quarantine portal is off for {domain} (peagectl domain add {domain} --route … --portal on)"
            ))),
        }
    }

    /// A signed link that opens `mailbox`'s held mail, good for `valid`, and when it
    /// expires; `FAILED_PRECONDITION` when this node knows no portal address or the
    /// mailbox's domain has the portal off.
    pub(super) async fn mailbox_link(
        &self,
        mailbox: &str,
        valid: Duration,
    ) -> Result<(String, i64), Status> {
        let base = self.portal_url.as_deref().ok_or_else(|| {
            Status::failed_precondition(
                "this node serves no portal (listen.portal) and has no portal.public_url",
            )
        })?;
        self.portal_open(mailbox)?;
        let key = self.portal_key().await?;
        let expires_at_ms = now_ms() + valid.as_millis() as i64;
        let token = signed_links::sign(&key, Purpose::Link, mailbox, expires_at_ms);
        let url = format!("{}/open/{token}", base.trim_end_matches('/'));
        Ok((url, expires_at_ms))
    }

    /// The language of `mailbox`'s domain (its digests and portal pages).
    pub fn mailbox_lang(&self, mailbox: &str) -> DigestLang {
        let domain = mailbox.rsplit_once('@').map_or("", |(_, d)| d);
        self.cluster.state().indexes().lang_of(domain)
    }

    /// The portal's signing key; the first call anywhere in the cluster makes it.
    pub async fn portal_key(&self) -> Result<Vec<u8>, Status> {
        if let Some(key) = self.cluster.state().indexes().portal_key() {
            return Ok(key);
        }
        let mut key = vec![0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        let (log_index, _) = self
            .propose(command::Kind::PortalKeySet(PortalKeySet { key }))
            .await?;
        self.cluster.wait_applied(log_index).await;
        // Another node's key may have been first: the replicated one is the key.
        self.cluster
            .state()
            .indexes()
            .portal_key()
            .ok_or_else(|| Status::unavailable("the portal key is not applied yet"))
    }

    /// The newest `at_most` messages quarantined for `mailbox`, newest first, each with its
    /// subject (read from its body: here, or fetched from a holder; empty when neither).
    pub async fn mailbox_held(
        &self,
        mailbox: &str,
        at_most: usize,
    ) -> Result<Vec<(QueuedMessage, String)>, Status> {
        self.portal_open(mailbox)?;
        let request = QueueListRequest {
            quarantine: true,
            page_size: 1000,
            ..Default::default()
        };
        let reply = messages::list(self, &Scope::mailbox(mailbox), request).await?;
        let mut held = Vec::new();
        for m in reply.messages.into_iter().rev().take(at_most) {
            let subject = match self.cluster.state().spool().get(&m.queue_id) {
                Some(stored) => self.subject_of(&stored).await,
                None => String::new(),
            };
            held.push((m, subject));
        }
        Ok(held)
    }

    /// A spooled message's subject, read from its body (here, or fetched from a holder);
    /// empty when it has none or no body could be had.
    pub(super) async fn subject_of(&self, m: &SpooledMessage) -> String {
        let body = body_of(&self.cluster, m).await.unwrap_or_default();
        MessageParser::default()
            .parse_headers(&body)
            .and_then(|h| h.subject().map(str::to_owned))
            .unwrap_or_default()
    }

    /// One of `mailbox`'s quarantined messages with its body.
    pub async fn mailbox_show(
        &self,
        mailbox: &str,
        queue_id: &str,
    ) -> Result<MessageShowReply, Status> {
        self.portal_open(mailbox)?;
        let id = MessageRef {
            queue_id: queue_id.to_owned(),
            ..Default::default()
        };
        messages::show(self, &Scope::mailbox(mailbox), id, false).await
    }

    /// Does `action` to `queue_id` for `mailbox` (from `client`), and records it.
    pub async fn mailbox_act(
        &self,
        mailbox: &str,
        client: String,
        action: MailboxAction,
        queue_id: &str,
    ) -> Result<(), Status> {
        let result = self.mailbox_change(mailbox, action, queue_id).await;
        let who = format!("mailbox:{mailbox}");
        let target = format!("{} {queue_id}", action.as_str());
        self.record((&who, "mailbox", client), "Portal", &target, &result)
            .await;
        result
    }

    async fn mailbox_change(
        &self,
        mailbox: &str,
        action: MailboxAction,
        queue_id: &str,
    ) -> Result<(), Status> {
        self.portal_open(mailbox)?;
        let scope = Scope::mailbox(mailbox);
        let held = messages::find(self, &scope, queue_id)?;
        let author = format!("mailbox:{mailbox}");
        let id = queue_id.to_owned();
        let list = match action {
            MailboxAction::Release | MailboxAction::ReleaseAndLearn => {
                let learn = action == MailboxAction::ReleaseAndLearn;
                messages::release_as(self, &scope, author, id, learn).await?;
                return Ok(());
            }
            MailboxAction::Delete => {
                messages::remove(
                    self,
                    scope,
                    MessageRef {
                        queue_id: id,
                        ..Default::default()
                    },
                )
                .await?;
                return Ok(());
            }
            MailboxAction::AllowSender => ListName::Allow,
            MailboxAction::BlockSender => ListName::Block,
        };
        if held.mail_from.is_empty() {
            return Err(Status::failed_precondition(
                "the message has no sender (a delivery report): nothing to allow or block",
            ));
        }
        let entry = ListAddRequest {
            list: list as i32,
            kind: EntryKind::Sender as i32,
            value: held.mail_from,
            reason: "set by the mailbox owner".into(),
            ttl_secs: None,
            scope: mailbox.to_owned(),
        };
        let caller = Caller {
            name: author,
            // A token's role is not a mailbox owner's: `list_write` asks only the scope.
            role: Role::DomainAdmin,
            scope,
            client: String::new(),
        };
        lists::add(self, caller, entry).await.map(|_| ())
    }
}
