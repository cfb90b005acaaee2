//! The portal's server: its routes, served over the TLS listener until the stop signal.

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use peage_mail::shutdown::Shutdown;

use super::context::Portal;
use super::handlers;
use super::incoming::{ClientAddr, TlsListener};

/// The portal's pages and actions.
fn routes(portal: Portal) -> Router {
    Router::new()
        .route("/", get(handlers::list))
        .route("/open/{token}", get(handlers::open))
        .route("/message/{queue_id}", get(handlers::preview))
        .route("/message/{queue_id}/{action}", post(handlers::act))
        .with_state(portal)
}

/// Serves the portal on `listener` until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    portal: Portal,
    mut stop: Shutdown,
) -> std::io::Result<()> {
    let app = routes(portal);
    let incoming = TlsListener::start(listener, tls, stop.clone());
    axum::serve(
        incoming,
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .with_graceful_shutdown(async move { stop.wait().await })
    .await
}
