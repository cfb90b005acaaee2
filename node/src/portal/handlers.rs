//! The portal's requests: opening a link (exchanged for a session cookie), the list of
//! held mail, one message's preview, and an action (POST with the session's CSRF token).
//! Every answer is a page, a redirect or a page saying what was refused and what to do.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

use super::context::{Portal, SESSION_COOKIE};
use super::incoming::ClientAddr;
use super::pages::{self, Held, Preview, Viewer};
use super::words::words;
use crate::admin::MailboxAction;
use crate::clock::now_ms;
use crate::signed_links::{self, Purpose};

/// Nothing the pages load comes from elsewhere, no script runs, no form posts elsewhere,
/// the link never leaks through a Referer, and nothing is cached.
fn secured(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn refused(status: StatusCode, why: &str) -> Response {
    secured(status, pages::refused(why))
}

fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(to) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, to);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, cookie);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A failed call to the cluster, as the user reads it.
fn failed(status: &Status) -> Response {
    let code = match status.code() {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    refused(code, status.message())
}

/// The signing key, or the page saying the portal cannot answer now.
async fn key(p: &Portal) -> Result<Vec<u8>, Response> {
    p.admin.portal_key().await.map_err(|e| failed(&e))
}

/// Who is signed in: the key, the session's mailbox and its cookie value.
struct SignedIn {
    key: Vec<u8>,
    mailbox: String,
    cookie: String,
}

impl SignedIn {
    async fn of(p: &Portal, headers: &HeaderMap) -> Result<SignedIn, Response> {
        let key = key(p).await?;
        let (mailbox, cookie) = session(&key, headers)?;
        Ok(SignedIn {
            key,
            mailbox,
            cookie,
        })
    }

    fn csrf(&self) -> String {
        signed_links::csrf_token(&self.key, &self.cookie)
    }

    /// Who a page is for, in the language of the mailbox's domain.
    fn viewer<'a>(&'a self, p: &Portal, csrf: &'a str) -> Viewer<'a> {
        Viewer {
            mailbox: &self.mailbox,
            csrf,
            words: words(p.admin.mailbox_lang(&self.mailbox)),
        }
    }
}

/// `GET /open/{token}[?m=<queue id>]`: a valid link sets the session cookie and leaves the
/// address bar for the list, or for the message a digest links to.
pub async fn open(
    State(p): State<Portal>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    let key = key(&p).await?;
    Ok(match signed_links::verify(&key, Purpose::Link, &token, now_ms()) {
        Err(why) => refused(
            StatusCode::FORBIDDEN,
            &format!("{why}. Open the link of your latest digest, or ask your administrator for a new one."),
        ),
        Ok((mailbox, _)) => {
            let max_age = p.session.as_secs();
            let expires = now_ms() + p.session.as_millis() as i64;
            let session = signed_links::sign(&key, Purpose::Session, &mailbox, expires);
            // Lax: the cookie comes along when the user follows the redirect from a mail
            // client's link, never with another site's POST.
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
            );
            redirect(&landing(query.as_deref()), Some(cookie))
        }
    })
}

/// Where an opened link leads: the message a digest's `?m=<queue id>` names, or the list.
fn landing(query: Option<&str>) -> String {
    let named = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "m")
        .map(|(_, id)| id.into_owned())
        .filter(|id| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    match named {
        Some(id) => format!("/message/{id}"),
        None => "/".to_owned(),
    }
}

/// The session's mailbox and cookie value, or the page asking for a link.
fn session(key: &[u8], headers: &HeaderMap) -> Result<(String, String), Response> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned());
    let no_session = |why: &str| {
        refused(
            StatusCode::UNAUTHORIZED,
            &format!("{why}. Open the link of your latest digest to see your held mail."),
        )
    };
    let cookie = cookie.ok_or_else(|| no_session("You are not signed in"))?;
    match signed_links::verify(key, Purpose::Session, &cookie, now_ms()) {
        Ok((mailbox, _)) => Ok((mailbox, cookie)),
        Err(signed_links::Refused::Expired) => Err(no_session("Your session has expired")),
        Err(_) => Err(no_session("Your session is not valid")),
    }
}

/// `GET /`: the mailbox's held mail, newest first.
pub async fn list(
    State(p): State<Portal>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, Response> {
    let me = SignedIn::of(&p, &headers).await?;
    let held = p.admin.mailbox_held(&me.mailbox, pages::MAX_ROWS).await;
    let rows: Vec<Held> = held
        .map_err(|e| failed(&e))?
        .into_iter()
        .map(|(message, subject)| Held { message, subject })
        .collect();
    let done = q
        .as_deref()
        .and_then(|q| q.strip_prefix("done="))
        .and_then(MailboxAction::parse);
    let page = pages::list(&me.viewer(&p, &me.csrf()), &rows, done);
    Ok(secured(StatusCode::OK, page))
}

/// `GET /message/{queue_id}`: headers and text of one held message, links as text.
pub async fn preview(
    State(p): State<Portal>,
    Path(queue_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let me = SignedIn::of(&p, &headers).await?;
    let shown = p.admin.mailbox_show(&me.mailbox, &queue_id).await;
    let shown = shown.map_err(|e| failed(&e))?;
    let message = shown
        .message
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, "No such message"))?;
    let preview = Preview::of(message, &shown.body);
    let page = pages::preview(&me.viewer(&p, &me.csrf()), &preview);
    Ok(secured(StatusCode::OK, page))
}

/// `POST /message/{queue_id}/{action}` with the form field `csrf`.
pub async fn act(
    State(p): State<Portal>,
    Path((queue_id, action)): Path<(String, String)>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    form: Bytes,
) -> Result<Response, Response> {
    let me = SignedIn::of(&p, &headers).await?;
    let given = form_urlencoded::parse(&form)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !signed_links::csrf_matches(&me.key, &me.cookie, &given) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "This form is out of date or did not come from this page. Go back, reload and try again.",
        ));
    }
    let action = MailboxAction::parse(&action)
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, "No such action"))?;
    let done = p
        .admin
        .mailbox_act(&me.mailbox, client.to_string(), action, &queue_id)
        .await;
    done.map_err(|e| failed(&e))?;
    Ok(redirect(&format!("/?done={}", action.as_str()), None))
}

#[cfg(test)]
mod tests {
    use super::landing;

    #[test]
    fn a_link_lands_on_the_message_it_names_and_nowhere_else() {
        assert_eq!(landing(None), "/");
        assert_eq!(landing(Some("m=00AB12")), "/message/00AB12");
        assert_eq!(landing(Some("x=1&m=00AB12")), "/message/00AB12");
        assert_eq!(landing(Some("m=%2F%2Fevil.example")), "/");
        assert_eq!(landing(Some("m=../admin")), "/");
        assert_eq!(landing(Some("m=")), "/");
    }
}
