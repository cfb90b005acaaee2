//! The portal's requests: opening a link (exchanged for a session cookie), the list of
//! held mail, one message's preview, and an action (POST with the session's CSRF token).
//! Every answer is a page, a redirect or a page saying what was refused and what to do.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mail_parser::MessageParser;
use tonic::{Code, Status};

use super::context::{Portal, SESSION_COOKIE};
use super::incoming::ClientAddr;
use super::pages::{self, Held, Preview};
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

/// `GET /open/{token}`: a valid link sets the session cookie and leaves the address bar.
pub async fn open(State(p): State<Portal>, Path(token): Path<String>) -> Response {
    let key = match key(&p).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    match signed_links::verify(&key, Purpose::Link, &token, now_ms()) {
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
            redirect("/", Some(cookie))
        }
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

/// The subject of a message, from its header (a missing one reads as empty).
fn subject_of(body: &[u8]) -> String {
    MessageParser::default()
        .parse_headers(body)
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /`: the mailbox's held mail, newest first.
pub async fn list(State(p): State<Portal>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let key = match key(&p).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    let (mailbox, cookie) = match session(&key, &headers) {
        Ok(s) => s,
        Err(page) => return page,
    };
    let held = match p.admin.mailbox_held(&mailbox).await {
        Ok(held) => held,
        Err(e) => return failed(&e),
    };
    let mut rows = Vec::with_capacity(held.len());
    for m in held.into_iter().rev().take(pages::MAX_ROWS) {
        // The subject is in the body (on a majority of nodes; fetched when not here).
        let subject = match p.admin.mailbox_show(&mailbox, &m.queue_id).await {
            Ok(shown) => subject_of(&shown.body),
            Err(_) => String::new(),
        };
        rows.push(Held {
            message: m,
            subject,
        });
    }
    let done = q
        .as_deref()
        .and_then(|q| q.strip_prefix("done="))
        .and_then(MailboxAction::parse);
    let csrf = signed_links::csrf_token(&key, &cookie);
    secured(StatusCode::OK, pages::list(&mailbox, &rows, &csrf, done))
}

/// `GET /message/{queue_id}`: headers and text of one held message, links as text.
pub async fn preview(
    State(p): State<Portal>,
    Path(queue_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let key = match key(&p).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    let (mailbox, cookie) = match session(&key, &headers) {
        Ok(s) => s,
        Err(page) => return page,
    };
    let shown = match p.admin.mailbox_show(&mailbox, &queue_id).await {
        Ok(shown) => shown,
        Err(e) => return failed(&e),
    };
    let Some(message) = shown.message else {
        return refused(StatusCode::NOT_FOUND, "No such message");
    };
    let preview = Preview::of(message, &shown.body);
    let csrf = signed_links::csrf_token(&key, &cookie);
    secured(StatusCode::OK, pages::preview(&mailbox, &preview, &csrf))
}

/// `POST /message/{queue_id}/{action}` with the form field `csrf`.
pub async fn act(
    State(p): State<Portal>,
    Path((queue_id, action)): Path<(String, String)>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let key = match key(&p).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    let (mailbox, cookie) = match session(&key, &headers) {
        Ok(s) => s,
        Err(page) => return page,
    };
    let given = form_urlencoded::parse(&form)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !signed_links::csrf_matches(&key, &cookie, &given) {
        return refused(
            StatusCode::FORBIDDEN,
            "This form is out of date or did not come from this page. Go back, reload and try again.",
        );
    }
    let Some(action) = MailboxAction::parse(&action) else {
        return refused(StatusCode::NOT_FOUND, "No such action");
    };
    match p
        .admin
        .mailbox_act(&mailbox, client.to_string(), action, &queue_id)
        .await
    {
        Ok(()) => redirect(&format!("/?done={}", action.as_str()), None),
        Err(e) => failed(&e),
    }
}
