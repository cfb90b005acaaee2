//! The portal's HTML, rendered on the server: it works without JavaScript, reads on a
//! phone (one column, large buttons), and everything a sender wrote is escaped — a
//! message's text is shown as text, its links printed, never followed or loaded.

use mail_parser::MessageParser;

use peage_mail::filter::points;
use peage_mail::smtp::trace::utc_minute;
use peage_proto::v1::QueuedMessage;

use super::words::{words, Words};
use crate::admin::MailboxAction;
use crate::html::escape;
use crate::state::DigestLang;

/// The most messages the list shows.
pub const MAX_ROWS: usize = 100;

/// The most characters of a message's text a preview shows.
const MAX_PREVIEW_CHARS: usize = 20_000;

/// One held message as the list shows it.
pub struct Held {
    pub message: QueuedMessage,
    pub subject: String,
}

/// What a preview shows of a message.
pub struct Preview {
    pub message: QueuedMessage,
    pub headers: Vec<(&'static str, String)>,
    /// The message's text; `None` when it has none to show.
    pub text: Option<String>,
}

impl Preview {
    pub fn of(message: QueuedMessage, body: &[u8]) -> Preview {
        let parsed = MessageParser::default().parse(body);
        let header = |name: &'static str| -> (&'static str, String) {
            let value = parsed
                .as_ref()
                .and_then(|m| m.header_raw(name))
                .map(|v| v.trim().replace(['\r', '\n'], " "))
                .unwrap_or_default();
            (name, value)
        };
        let headers = vec![
            header("From"),
            header("To"),
            header("Date"),
            header("Subject"),
        ];
        let text = parsed
            .as_ref()
            .and_then(|m| m.body_text(0))
            .map(|t| t.chars().take(MAX_PREVIEW_CHARS).collect());
        Preview {
            message,
            headers,
            text,
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.4;color:#1b1b1b}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.5rem;border-bottom:1px solid #ccc;vertical-align:top}\
form{display:inline}button{font-size:1rem;padding:.5rem .8rem;margin:.2rem;border:1px solid #555;border-radius:.3rem;background:#f4f4f4;cursor:pointer}\
button.main{background:#0b5394;color:#fff}pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:1rem;border:1px solid #ddd}\
.note{background:#e6f4ea;border:1px solid #7bb67f;padding:.6rem}.refused{background:#fdecea;border:1px solid #d9534f;padding:.6rem}\
dt{font-weight:bold}dd{margin:0 0 .5rem 0;word-break:break-word}\
@media (max-width:40rem){table,thead,tbody,tr,th,td{display:block}thead{display:none}td{border:none;padding:.2rem}tr{border-bottom:1px solid #ccc;padding:.5rem 0}}";

fn page(w: &Words, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        lang = w.lang,
        title = w.title,
    )
}

/// A page saying what was refused and what to do about it (in English: it is shown to
/// whoever asks, signed in or not).
pub fn refused(why: &str) -> String {
    let w = words(DigestLang::En);
    let body = format!(
        "<h1>{}</h1><p class=\"refused\" role=\"alert\">{}</p>",
        w.title,
        escape(why)
    );
    page(w, &body)
}

/// The buttons of one message: each a POST form with the session's CSRF token.
fn actions(queue_id: &str, csrf: &str, w: &Words) -> String {
    let labels = [
        (MailboxAction::Release, w.release),
        (MailboxAction::ReleaseAndLearn, w.release_learn),
        (MailboxAction::AllowSender, w.allow),
        (MailboxAction::BlockSender, w.block),
        (MailboxAction::Delete, w.delete),
    ];
    let mut out = String::new();
    for (action, label) in labels {
        let class = match action {
            MailboxAction::Release => " class=\"main\"",
            _ => "",
        };
        out.push_str(&format!(
            "<form method=\"post\" action=\"/message/{id}/{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\"{class}>{label}</button></form>",
            id = escape(queue_id),
            action = action.as_str(),
            csrf = escape(csrf),
        ));
    }
    out
}

fn done_note(done: Option<MailboxAction>, w: &Words) -> String {
    let said = match done {
        None => return String::new(),
        Some(MailboxAction::Release) => w.released,
        Some(MailboxAction::ReleaseAndLearn) => w.released_learned,
        Some(MailboxAction::Delete) => w.deleted,
        Some(MailboxAction::AllowSender) => w.allowed,
        Some(MailboxAction::BlockSender) => w.blocked,
    };
    format!("<p class=\"note\" role=\"status\">{said}</p>")
}

/// What a list or a preview page is for: the session's mailbox, its CSRF token, and the
/// words of its domain's language.
pub struct Viewer<'a> {
    pub mailbox: &'a str,
    pub csrf: &'a str,
    pub words: &'static Words,
}

/// The mailbox's held messages, with their buttons.
pub fn list(v: &Viewer<'_>, rows: &[Held], done: Option<MailboxAction>) -> String {
    let w = v.words;
    let mut body = format!(
        "<h1>{} {}</h1>{}",
        w.held_for,
        escape(v.mailbox),
        done_note(done, w)
    );
    if rows.is_empty() {
        body.push_str(&format!("<p>{}</p>", w.nothing_held));
        return page(w, &body);
    }
    body.push_str("<table><thead><tr>");
    for column in [w.date, w.sender, w.subject, w.score, w.why, w.actions] {
        body.push_str(&format!("<th scope=\"col\">{column}</th>"));
    }
    body.push_str("</tr></thead><tbody>");
    for h in rows {
        let m = &h.message;
        let main = m.symbols.iter().max_by_key(|s| s.score_milli);
        let why = main.map_or("", |s| s.reason.as_str());
        let subject = match h.subject.as_str() {
            "" => w.no_subject,
            s => s,
        };
        body.push_str(&format!(
            "<tr><td>{date}</td><td>{sender}</td><td><a href=\"/message/{id}\">{subject}</a></td>\
             <td>{score}</td><td>{why}</td><td>{actions}</td></tr>",
            date = utc_minute(m.accepted_at_ms),
            sender = escape(sender_of(m, w)),
            id = escape(&m.queue_id),
            subject = escape(subject),
            score = points(m.score_milli),
            why = escape(why),
            actions = actions(&m.queue_id, v.csrf, w),
        ));
    }
    body.push_str("</tbody></table>");
    page(w, &body)
}

fn sender_of<'m>(m: &'m QueuedMessage, w: &'static Words) -> &'m str {
    match m.mail_from.as_str() {
        "" => w.report,
        s => s,
    }
}

/// One message: its main headers, why it was held, its text, and its buttons.
pub fn preview(v: &Viewer<'_>, p: &Preview) -> String {
    let (m, w) = (&p.message, v.words);
    let mut body = format!(
        "<p><a href=\"/\">← {} {}</a></p><h1>{} {}</h1><dl>",
        w.held_for,
        escape(v.mailbox),
        w.message,
        escape(&m.queue_id)
    );
    for (name, value) in &p.headers {
        body.push_str(&format!("<dt>{name}</dt><dd>{}</dd>", escape(value)));
    }
    body.push_str(&format!(
        "<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd><ul>",
        w.envelope_sender,
        escape(sender_of(m, w)),
        w.score,
        points(m.score_milli),
        w.why_held,
    ));
    for s in m.symbols.iter().filter(|s| s.score_milli > 0) {
        body.push_str(&format!("<li>{}</li>", escape(&s.reason)));
    }
    body.push_str(&format!(
        "</ul></dd></dl><div>{}</div><h2>{}</h2><p>{}</p><pre>{}</pre>",
        actions(&m.queue_id, v.csrf, w),
        w.text,
        w.links_as_text,
        escape(p.text.as_deref().unwrap_or(w.no_text))
    ));
    page(w, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_sender_wrote_is_escaped_and_links_are_text() {
        let body = b"From: \"<script>alert(1)</script>\" <evil@spam.example>\r\n\
                     Subject: <b>win</b>\r\nContent-Type: text/html\r\n\r\n\
                     <p>Click <a href=\"https://evil.example/x\">here</a><img src=\"https://track.example/p.gif\"></p>";
        let message = QueuedMessage {
            queue_id: "Q1".into(),
            mail_from: "evil@spam.example".into(),
            ..Default::default()
        };
        let viewer = Viewer {
            mailbox: "bob@example.test",
            csrf: "tok",
            words: words(DigestLang::En),
        };
        let html = preview(&viewer, &Preview::of(message, body));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href=\"https://evil.example"), "{html}");
        assert!(html.contains("&lt;b&gt;win&lt;/b&gt;"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"tok\""), "{html}");
    }

    #[test]
    fn a_french_domain_s_list_is_in_french() {
        let viewer = Viewer {
            mailbox: "bob@example.test",
            csrf: "tok",
            words: words(DigestLang::Fr),
        };
        let held = Held {
            message: QueuedMessage {
                queue_id: "Q1".into(),
                ..Default::default()
            },
            subject: String::new(),
        };
        let html = list(&viewer, &[held], Some(MailboxAction::Delete));
        for french in [
            "<html lang=\"fr\">",
            "Courrier retenu pour bob@example.test",
            "(sans objet)",
            "(avis de non-remise)",
            ">Débloquer<",
            "Le message est supprimé.",
        ] {
            assert!(html.contains(french), "{french}: {html}");
        }
        let empty = list(&viewer, &[], None);
        assert!(
            empty.contains("Aucun message n'est retenu pour vous."),
            "{empty}"
        );
    }
}
