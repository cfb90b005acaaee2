//! The digest mail itself: one message to one mailbox listing what was held for it, in a
//! plain-text and an HTML part, in English or French, each message with a link that opens
//! it in the portal. Everything a sender wrote is escaped in the HTML part.

use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use peage_mail::filter::points;
use peage_mail::smtp::trace::utc_minute;

use crate::html::escape;
use crate::state::DigestLang;

/// One held message as a digest lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub queue_id: String,
    pub accepted_at_ms: i64,
    /// The envelope sender; empty for a delivery report.
    pub sender: String,
    pub subject: String,
    pub score_milli: i64,
    /// The reason of the check that weighed most.
    pub why: String,
}

/// What one digest says, and to whom.
pub struct Digest<'a> {
    pub recipient: &'a str,
    pub lang: DigestLang,
    pub listed: &'a [Listed],
    /// The signed link that opens the recipient's held mail; `?m=<queue id>` opens one.
    pub link: &'a str,
    pub link_expires_at_ms: i64,
    /// How long held mail is kept before it is deleted.
    pub retention_days: i64,
    /// The node's SMTP name, for the From address and the Message-ID.
    pub hostname: &'a str,
    pub now_ms: i64,
    /// Unique per digest (its key), for the Message-ID.
    pub id: &'a str,
}

/// The words of one language.
struct Words {
    from_name: &'static str,
    held_one: &'static str,
    held_many: &'static str,
    greeting: &'static str,
    intro: &'static str,
    date: &'static str,
    sender: &'static str,
    subject: &'static str,
    score: &'static str,
    why: &'static str,
    open: &'static str,
    all: &'static str,
    kept: &'static str,
    until: &'static str,
    no_subject: &'static str,
    report: &'static str,
}

const ENGLISH: Words = Words {
    from_name: "Quarantine",
    held_one: "message held for",
    held_many: "messages held for",
    greeting: "Hello,",
    intro: "The mail to {rcpt} listed below was held as probable spam and was not delivered to your mailbox. Open a message to see it, release it, allow or block its sender, or delete it.",
    date: "Date",
    sender: "From",
    subject: "Subject",
    score: "Score",
    why: "Why",
    open: "Open",
    all: "All your held mail",
    kept: "Held mail is deleted after {days} days.",
    until: "These links work until {until}.",
    no_subject: "(no subject)",
    report: "(delivery report)",
};

const FRENCH: Words = Words {
    from_name: "Quarantaine",
    held_one: "message retenu pour",
    held_many: "messages retenus pour",
    greeting: "Bonjour,",
    intro: "Le courrier adressé à {rcpt} ci-dessous a été retenu comme indésirable probable et n'a pas été remis dans votre boîte. Ouvrez un message pour le voir, le débloquer, autoriser ou bloquer son expéditeur, ou le supprimer.",
    date: "Date",
    sender: "Expéditeur",
    subject: "Objet",
    score: "Score",
    why: "Motif",
    open: "Ouvrir",
    all: "Tout votre courrier retenu",
    kept: "Le courrier retenu est supprimé après {days} jours.",
    until: "Ces liens fonctionnent jusqu'au {until}.",
    no_subject: "(sans objet)",
    report: "(avis de non-remise)",
};

fn words(lang: DigestLang) -> &'static Words {
    match lang {
        DigestLang::En => &ENGLISH,
        DigestLang::Fr => &FRENCH,
    }
}

impl Digest<'_> {
    pub fn subject(&self) -> String {
        let w = words(self.lang);
        let held = match self.listed.len() {
            1 => w.held_one,
            _ => w.held_many,
        };
        format!("{} {held} {}", self.listed.len(), self.recipient)
    }

    fn intro(&self) -> String {
        words(self.lang).intro.replace("{rcpt}", self.recipient)
    }

    fn footer(&self) -> [String; 2] {
        let w = words(self.lang);
        [
            w.kept.replace("{days}", &self.retention_days.to_string()),
            w.until
                .replace("{until}", &utc_minute(self.link_expires_at_ms)),
        ]
    }

    fn link_to(&self, m: &Listed) -> String {
        format!("{}?m={}", self.link, m.queue_id)
    }

    /// The (sender, subject) a message is listed with.
    fn shown<'m>(&self, m: &'m Listed) -> (&'m str, &'m str) {
        let w = words(self.lang);
        let sender = if m.sender.is_empty() {
            w.report
        } else {
            &m.sender
        };
        let subject = if m.subject.is_empty() {
            w.no_subject
        } else {
            &m.subject
        };
        (sender, subject)
    }

    pub fn text(&self) -> String {
        let w = words(self.lang);
        let mut out = format!("{}\n\n{}\n\n", w.greeting, self.intro());
        for m in self.listed {
            let (sender, subject) = self.shown(m);
            out.push_str(&format!(
                "{}: {}\n{}: {sender}\n{}: {subject}\n{}: {} ({})\n{}: {}\n\n",
                w.date,
                utc_minute(m.accepted_at_ms),
                w.sender,
                w.subject,
                w.score,
                points(m.score_milli),
                m.why,
                w.open,
                self.link_to(m),
            ));
        }
        let [kept, until] = self.footer();
        out.push_str(&format!("{}: {}\n\n{kept}\n{until}\n", w.all, self.link));
        out
    }

    pub fn html(&self) -> String {
        let w = words(self.lang);
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body style=\"font-family:sans-serif;line-height:1.4\"><p>{greeting}</p><p>{intro}</p>\
             <table cellpadding=\"6\" style=\"border-collapse:collapse\"><thead><tr>\
             <th align=\"left\">{date}</th><th align=\"left\">{sender}</th><th align=\"left\">{subject}</th>\
             <th align=\"left\">{score}</th><th align=\"left\">{why}</th></tr></thead><tbody>",
            lang = self.lang.as_str(),
            title = escape(&self.subject()),
            greeting = w.greeting,
            intro = escape(&self.intro()),
            date = w.date,
            sender = w.sender,
            subject = w.subject,
            score = w.score,
            why = w.why,
        );
        for m in self.listed {
            let (sender, subject) = self.shown(m);
            out.push_str(&format!(
                "<tr style=\"border-top:1px solid #ccc\"><td>{date}</td><td>{sender}</td>\
                 <td><a href=\"{link}\">{subject}</a></td><td>{score}</td><td>{why}</td></tr>",
                date = utc_minute(m.accepted_at_ms),
                sender = escape(sender),
                link = escape(&self.link_to(m)),
                subject = escape(subject),
                why = escape(&m.why),
                score = points(m.score_milli),
            ));
        }
        let [kept, until] = self.footer();
        out.push_str(&format!(
            "</tbody></table><p><a href=\"{link}\">{all}</a></p><p>{kept}<br>{until}</p></body></html>\n",
            link = escape(self.link),
            all = w.all,
        ));
        out
    }

    /// The whole message, ready for the spool.
    pub fn build(&self) -> Vec<u8> {
        let domain = self
            .recipient
            .rsplit_once('@')
            .map_or(self.hostname, |(_, d)| d);
        MessageBuilder::new()
            .from((
                words(self.lang).from_name,
                format!("postmaster@{domain}").as_str(),
            ))
            .to(self.recipient)
            .subject(self.subject())
            .date(self.now_ms / 1000)
            .message_id(format!("digest.{}@{}", self.id, self.hostname))
            .header("Auto-Submitted", Raw::new("auto-generated"))
            .text_body(self.text())
            .html_body(self.html())
            .write_to_vec()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(subject: &str, sender: &str) -> Listed {
        Listed {
            queue_id: "00AB".into(),
            accepted_at_ms: 1_796_000_000_000,
            sender: sender.into(),
            subject: subject.into(),
            score_milli: 7_500,
            why: "BAYES_99 <probably>".into(),
        }
    }

    fn digest<'a>(lang: DigestLang, listed: &'a [Listed]) -> Digest<'a> {
        Digest {
            recipient: "bob@example.test",
            lang,
            listed,
            link: "https://portal.example/open/abc.1.sig",
            link_expires_at_ms: 1_797_000_000_000,
            retention_days: 30,
            hostname: "paris.peage",
            now_ms: 1_796_000_100_000,
            id: "daily:bob@example.test:2026-12-06",
        }
    }

    #[test]
    fn a_digest_lists_each_message_with_its_link_in_both_parts_and_escapes_the_sender_s_words() {
        let rows = [
            listed("<script>alert(1)</script> Prize", "x@spam.example"),
            listed("", ""),
        ];
        let d = digest(DigestLang::En, &rows);
        assert_eq!(d.subject(), "2 messages held for bob@example.test");
        let text = d.text();
        assert!(text.contains("Open: https://portal.example/open/abc.1.sig?m=00AB"));
        assert!(text.contains("(no subject)") && text.contains("(delivery report)"));
        assert!(text.contains("deleted after 30 days"), "{text}");
        let html = d.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; Prize"));
        assert!(html.contains("href=\"https://portal.example/open/abc.1.sig?m=00AB\""));
        assert!(
            html.contains("<td>BAYES_99 &lt;probably&gt;</td>"),
            "{html}"
        );
        let mail = mail_parser::MessageParser::default()
            .parse(&d.build())
            .unwrap()
            .into_owned();
        assert_eq!(mail.subject(), Some("2 messages held for bob@example.test"));
        assert!(mail.body_text(0).unwrap().contains("?m=00AB"));
        assert!(mail.body_html(0).unwrap().contains("?m=00AB"));
        assert_eq!(
            mail.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
    }

    #[test]
    fn a_french_digest_speaks_french() {
        let rows = [listed("Gagnez", "x@spam.example")];
        let d = digest(DigestLang::Fr, &rows);
        assert_eq!(d.subject(), "1 message retenu pour bob@example.test");
        assert!(d.text().contains("Expéditeur: x@spam.example"));
        assert!(d.text().contains("supprimé après 30 jours"));
        assert!(d.html().starts_with("<!DOCTYPE html>\n<html lang=\"fr\">"));
        let mail = mail_parser::MessageParser::default()
            .parse(&d.build())
            .unwrap()
            .into_owned();
        assert_eq!(
            mail.from().unwrap().first().unwrap().name(),
            Some("Quarantaine")
        );
        assert!(mail
            .body_text(0)
            .unwrap()
            .contains("Tout votre courrier retenu"));
    }
}
