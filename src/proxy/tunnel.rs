//! Upgraded connections (WebSocket and any other `Upgrade`): once the app answered 101,
//! bytes are copied both ways until either side closes. The tunnel counts as one request
//! in flight for as long as it is open, so closing waits for it up to its cap; when the
//! drain reaches stopping the tunnel is closed (both sides get FIN) before the app gets
//! its signal.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::conn::reached;
use crate::drain::{Drain, InFlight, Phase};

/// `guard` (the request in flight) lives as long as the tunnel.
pub(crate) fn spawn(client: OnUpgrade, app: OnUpgrade, guard: InFlight, drain: Drain) {
    tokio::spawn(async move {
        let _guard = guard;
        let (client, app) = match tokio::try_join!(client, app) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("upgrade did not complete: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut app = TokioIo::new(app);
        let mut phases = drain.subscribe();
        tokio::select! {
            res = tokio::io::copy_bidirectional(&mut client, &mut app) => {
                if let Err(e) = res {
                    tracing::debug!("upgraded connection ended: {e}");
                }
            }
            () = reached(&mut phases, Phase::Stopping) => {
                tracing::info!("closing an upgraded connection: the drain is over");
                let _ = client.shutdown().await;
                let _ = app.shutdown().await;
            }
        }
    });
}
