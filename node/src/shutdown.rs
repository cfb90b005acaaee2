//! How a node is told to stop: Ctrl-C or SIGTERM; SIGHUP is logged and ignored. The
//! signal itself, fanned out to every task, is `peage_mail::shutdown` (the mail front needs
//! it too); `run` stops the node in two stages with two of them.

/// Completes on Ctrl-C or SIGTERM. SIGHUP, which would end the process by default (and
/// which systemd counts as a clean exit, so `Restart=on-failure` would not bring it back),
/// reloads nothing: certificates are read at every handshake, the rest needs a restart.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hangup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return,
                _ = term.recv() => return,
                _ = hangup.recv() => tracing::warn!(
                    "SIGHUP ignored: TLS certificates are read again at every handshake; \
                     a changed configuration takes a restart"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
