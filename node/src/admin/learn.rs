//! Teaching the classifier through Raft: a message's features are computed here (apply
//! never parses mail) and proposed as one `BayesLearn`.

use tonic::Status;

use peage_mail::bayes::Class;
use peage_mail::smtp::trace::strip_our_stamp;
use peage_proto::v1::{command, BayesLearn, LearnReply, LearnRequest};

use super::convert::outcome_status;
use super::service::AdminService;
use super::validate::invalid;
use crate::types::{LearnChange, Outcome};

/// What learning one message did.
pub struct Learned {
    pub log_index: u64,
    pub change: LearnChange,
    pub fingerprint: String,
}

/// Teaches the classifier `message` as `class`, through Raft.
pub async fn learn_message(
    svc: &AdminService,
    message: &[u8],
    class: Class,
    author: String,
) -> Result<Learned, Status> {
    // Learned as it was judged: without the trace and verdict a node stamped on it.
    let body = strip_our_stamp(message).into_owned();
    let (tokens, features) = crate::cpu::run(move || {
        let msg = mail_parser::MessageParser::default().parse(&body)?;
        let decoded = peage_mail::text::MessageText::of(&msg);
        Some((
            peage_mail::bayes::tokens_of(&msg, &decoded),
            peage_mail::features::features_of(&msg, &decoded),
        ))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .ok_or_else(|| invalid("the message cannot be parsed"))?;
    let fingerprint = tokens.fingerprint();
    let learn = BayesLearn {
        fingerprint: fingerprint.clone(),
        class: class.as_str().to_owned(),
        tokens: tokens.0,
        author,
        features: features.0,
    };
    match svc.propose(command::Kind::BayesLearn(learn)).await? {
        (log_index, Outcome::Learned { change }) => Ok(Learned {
            log_index,
            change,
            fingerprint,
        }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn learn(
    svc: &AdminService,
    author: String,
    r: LearnRequest,
) -> Result<LearnReply, Status> {
    let class = Class::parse(&r.class)
        .ok_or_else(|| invalid(format!("class must be spam or ham, not {:?}", r.class)))?;
    if r.message.is_empty() {
        return Err(invalid("the message is empty"));
    }
    let learned = learn_message(svc, &r.message, class, author).await?;
    svc.cluster.wait_applied(learned.log_index).await;
    let (spam_messages, ham_messages, tokens, _) = svc.cluster.state().indexes().bayes_counts();
    Ok(LearnReply {
        change: learned.change.as_str().to_owned(),
        fingerprint: learned.fingerprint,
        log_index: learned.log_index,
        spam_messages,
        ham_messages,
        tokens,
    })
}
