//! HTTP services of a Front End: Prometheus metrics at `/metrics`, a health check
//! at `/health`, and SIP over WebSocket (RFC 7118, subprotocol `sip`) at `/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use confab_frontend::{Dest, Metrics, Transport};
use confab_sip::Message;
use confab_transport::{Connections, Event};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tracing::{debug, info};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct WebState {
    pub metrics: Arc<Metrics>,
    pub conns: Arc<Connections>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot bind HTTP on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(ws_upgrade))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Binds the HTTP listener and serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    info!(%local, "HTTP listening (metrics, SIP over WebSocket)");
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok((local, handle))
}

async fn metrics(State(st): State<WebState>) -> Response {
    let mut body = st.metrics.render();
    body.push_str("# HELP confab_connections Open SIP connections (TCP, TLS, WebSocket).\n");
    body.push_str("# TYPE confab_connections gauge\n");
    body.push_str(&format!("confab_connections {}\n", st.conns.count()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn ws_upgrade(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (
            StatusCode::OK,
            "confab: SIP over WebSocket lives here (subprotocol \"sip\")\n",
        )
            .into_response();
    };
    let wants_sip = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !wants_sip {
        return (
            StatusCode::BAD_REQUEST,
            "WebSocket subprotocol \"sip\" required (RFC 7118)\n",
        )
            .into_response();
    }
    ws.protocols(["sip"])
        .on_upgrade(move |socket| run_ws(socket, peer, st))
}

async fn run_ws(socket: WebSocket, peer: SocketAddr, st: WebState) {
    let Some(reg) = st.conns.register(Transport::Ws, peer) else {
        debug!(%peer, "WebSocket refused: connection limit");
        return;
    };
    let id = reg.id;
    let mut rx = reg.rx;
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            let msg = match String::from_utf8(data.to_vec()) {
                Ok(text) => WsMessage::Text(text.into()),
                Err(_) => WsMessage::Binary(data),
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let limits = st.conns.limits().sip;
    let dest = Dest {
        transport: Transport::Ws,
        addr: peer,
        conn: Some(id),
    };
    let closed = reg.closed.clone();
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = closed.notified() => {
                debug!(%peer, "WebSocket closed by the server");
                break;
            }
        };
        let Some(Ok(frame)) = frame else { break };
        let data: Bytes = match frame {
            WsMessage::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            WsMessage::Binary(b) => b,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        // RFC 7118 §5: one frame carries exactly one message.
        let ev = match Message::parse(data, &limits) {
            Ok(m) => Event::Message(m, dest),
            Err(e) => Event::Malformed(e, dest),
        };
        if st.conns.events().send(ev).await.is_err() {
            break;
        }
    }
    drop(reg.tx);
    st.conns.unregister(id);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
}
