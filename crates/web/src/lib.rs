//! HTTP services of a Front End: Prometheus metrics at `/metrics`, a health check
//! at `/health`, SIP over WebSocket (RFC 7118, subprotocol `sip`) at `/`, and
//! Persistent Chat history search at `/chat/search` (HTTP Basic, signed-in users).

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

pub mod chat_search;
pub mod http;
use http::{DeadlineListener, PeerInfo};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct WebState {
    pub metrics: Arc<Metrics>,
    pub conns: Arc<Connections>,
    /// Persistent Chat history search (`GET /chat/search`); `None`: not served.
    pub chat_search: Option<Arc<dyn chat_search::ChatSearch>>,
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
        .route("/chat/search", get(chat_search::handler))
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
    let listener = DeadlineListener {
        inner: listener,
        timeout: state.conns.limits().header_timeout,
        backoff: confab_transport::AcceptBackoff::new(),
    };
    let app = router(state).into_make_service_with_connect_info::<PeerInfo>();
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
    let (per_ip, total) = st.conns.refused();
    body.push_str(
        "# HELP confab_connections_refused_total SIP connections refused by a connection limit.\n",
    );
    body.push_str("# TYPE confab_connections_refused_total counter\n");
    body.push_str(&format!(
        "confab_connections_refused_total{{limit=\"per_ip\"}} {per_ip}\nconfab_connections_refused_total{{limit=\"total\"}} {total}\n"
    ));
    let (idle, slow) = st.conns.timed_out();
    body.push_str("# HELP confab_connections_timed_out_total SIP connections closed by the idle timeout or the header deadline.\n");
    body.push_str("# TYPE confab_connections_timed_out_total counter\n");
    body.push_str(&format!(
        "confab_connections_timed_out_total{{reason=\"idle\"}} {idle}\nconfab_connections_timed_out_total{{reason=\"header\"}} {slow}\n"
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn ws_upgrade(
    State(st): State<WebState>,
    ConnectInfo(PeerInfo { peer, deadline }): ConnectInfo<PeerInfo>,
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
    // The SIP message limit bounds frames and (fragmented) messages alike: a
    // larger one closes the connection before it is buffered (RFC 7118 puts one
    // SIP message in one WebSocket message).
    let max = st.conns.limits().sip.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .protocols(["sip"])
        .on_upgrade(move |socket| run_ws(socket, peer, st, deadline))
}

async fn run_ws(socket: WebSocket, peer: SocketAddr, st: WebState, deadline: Arc<http::Deadline>) {
    // From here the SIP idle clock applies, not the HTTP request deadline.
    deadline.disarm();
    let Ok(reg) = st.conns.register(Transport::Ws, peer) else {
        // Counted and logged by `register`.
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
    let mut live = st.conns.liveness(reg.flow.clone());
    let timer = tokio::time::sleep_until(live.deadline());
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = closed.notified() => {
                debug!(%peer, "WebSocket closed by the server");
                break;
            }
            _ = &mut timer => {
                match live.check(tokio::time::Instant::now()) {
                    Ok(next) => {
                        timer.as_mut().reset(next);
                        continue;
                    }
                    Err(why) => {
                        st.conns.note_timeout(why, Transport::Ws, peer);
                        break;
                    }
                }
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // A frame or message over the SIP message limit, or a protocol
                // error: the connection ends.
                debug!(%peer, error = %e, "closing WebSocket");
                break;
            }
            None => break,
        };
        let data: Bytes = match frame {
            WsMessage::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            WsMessage::Binary(b) => b,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        live.on_message(tokio::time::Instant::now());
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
