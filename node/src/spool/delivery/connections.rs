//! The outbound connection manager: how many connections each route may have open at once,
//! and the connections left open after a clean transaction, kept for the next message to
//! the same route (checked with RSET before reuse).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_send::smtp::message::Parameters;
use mail_send::SmtpClient;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use peage_mail::sync::lock;

use super::stream::DownstreamStream;

/// An open SMTP session to a downstream, between transactions, and what its EHLO offered
/// that a transaction needs.
pub struct SmtpConnection {
    pub client: SmtpClient<DownstreamStream>,
    /// It offered SMTPUTF8: a non-ASCII address is sent with the parameter (RFC 6531).
    pub smtputf8: bool,
}

impl SmtpConnection {
    /// The MAIL FROM parameters for an envelope: SMTPUTF8 when an address needs it and the
    /// downstream offered it. One that did not is sent the address as it is, as Postfix
    /// does: most servers take UTF-8 mailboxes without the parameter.
    pub fn mail_parameters<'a>(
        &self,
        mail_from: &str,
        rcpts: impl IntoIterator<Item = &'a str>,
    ) -> Parameters<'static> {
        let mut params = Parameters::default();
        let needs_utf8 = !mail_from.is_ascii() || rcpts.into_iter().any(|r| !r.is_ascii());
        if needs_utf8 && self.smtputf8 {
            params.add("SMTPUTF8");
        }
        params
    }
}

/// How long an unused connection is kept: well under the idle timeout of common servers
/// (Postfix's smtpd waits 300 s), so that a reused one is rarely found closed.
pub const IDLE_FOR: Duration = Duration::from_secs(10);

/// The connection budgets and idle connections of every route, made on first use.
#[derive(Clone)]
pub struct Connections {
    max_per_route: usize,
    routes: Arc<Mutex<HashMap<String, Arc<Route>>>>,
    /// For STARTTLS, built once. Opportunistic, as Postfix's `may` level: the certificate
    /// is not verified (an MX's name cannot be, without DANE or MTA-STS), so the session
    /// is encrypted against eavesdroppers, and a downstream with a self-signed or expired
    /// certificate still gets its mail.
    tls: TlsConnector,
}

struct Route {
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<(Instant, SmtpConnection)>>,
}

impl Connections {
    pub fn new(max_per_route: usize) -> Connections {
        let tls = mail_send::smtp::tls::build_tls_connector(true)
            .expect("a TLS client that verifies nothing needs no root certificates");
        Connections {
            max_per_route,
            routes: Arc::default(),
            tls,
        }
    }

    /// The TLS settings new connections are made with.
    pub fn tls(&self) -> TlsConnector {
        self.tls.clone()
    }

    /// Waits for a connection slot to `route`; the slot is freed when the checkout drops.
    pub async fn checkout(&self, route: &str) -> Option<Checkout> {
        let r = lock(&self.routes)
            .entry(route.to_owned())
            .or_insert_with(|| {
                Arc::new(Route {
                    slots: Arc::new(Semaphore::new(self.max_per_route)),
                    idle: Mutex::default(),
                })
            })
            .clone();
        let slot = r.slots.clone().acquire_owned().await.ok()?;
        Some(Checkout {
            _slot: slot,
            route: r,
        })
    }

    /// Connections kept open to `route` now (for tests and metrics).
    pub fn idle(&self, route: &str) -> usize {
        lock(&self.routes)
            .get(route)
            .map_or(0, |r| lock(&r.idle).len())
    }
}

/// The right to one connection to a route, held for one transaction.
pub struct Checkout {
    _slot: OwnedSemaphorePermit,
    route: Arc<Route>,
}

impl Checkout {
    /// The most recently used idle connection to the route, if one is fresh enough; older
    /// ones are closed.
    pub fn reuse(&self) -> Option<SmtpConnection> {
        let mut idle = lock(&self.route.idle);
        idle.retain(|(since, _)| since.elapsed() < IDLE_FOR);
        idle.pop().map(|(_, c)| c)
    }

    /// Closes the route's idle connections (the downstream said it has too many).
    pub fn close_idle(&self) {
        lock(&self.route.idle).clear();
    }

    /// Keeps a connection whose transaction ended cleanly, for the next message.
    pub fn keep(self, connection: SmtpConnection) {
        lock(&self.route.idle).push((Instant::now(), connection));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_route_has_at_most_its_budget_of_connections_at_once() {
        let c = Connections::new(2);
        let first = c.checkout("smtp://a:25").await.unwrap();
        let _second = c.checkout("smtp://a:25").await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), c.checkout("smtp://a:25"));
        assert!(third.await.is_err(), "a third connection waits");
        assert!(
            c.checkout("smtp://b:25").await.is_some(),
            "another route has its own budget"
        );
        drop(first);
        assert!(
            c.checkout("smtp://a:25").await.is_some(),
            "a freed slot is reused"
        );
    }
}
