//! The agent's own health in Prometheus text format, served on
//! `[metrics] listen` by a minimal HTTP/1.1 responder (`GET /metrics`; any
//! other path is 404). One request per connection; no keep-alive.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges the daemon updates.
#[derive(Debug, Default)]
pub struct Metrics {
    /// SNMP polls that succeeded.
    pub polls_ok: AtomicU64,
    /// SNMP polls that failed.
    pub polls_failed: AtomicU64,
    /// Failed requests to the server.
    pub uplink_errors: AtomicU64,
    /// 1 while the last request to the server succeeded.
    pub up: AtomicU64,
    /// Faults raised and not cleared.
    pub faults_open: AtomicU64,
    /// Unacknowledged spool records.
    pub spool_records: AtomicU64,
    /// Spool bytes on disk.
    pub spool_bytes: AtomicU64,
    /// 1 while the tunnel to the relay is connected.
    pub tunnel_up: AtomicU64,
    /// Successful tunnel connections (authenticated, forwarding granted).
    pub tunnel_connects: AtomicU64,
    /// Forwarded channels accepted and spliced to their target.
    pub tunnel_channels_accepted: AtomicU64,
    /// Channels refused: target or port not allowed, or a channel type the
    /// agent never accepts.
    pub tunnel_channels_refused: AtomicU64,
    /// Allowed channels whose target could not be reached.
    pub tunnel_channels_failed: AtomicU64,
    /// Bytes written to targets (from engineers).
    pub tunnel_bytes_to_target: AtomicU64,
    /// Bytes read from targets (to engineers).
    pub tunnel_bytes_from_target: AtomicU64,
}

impl Metrics {
    /// The exposition text.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, u64)]| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP outpost_agent_{name} {help}");
            let _ = writeln!(out, "# TYPE outpost_agent_{name} {kind}");
            for (labels, value) in lines {
                let _ = writeln!(out, "outpost_agent_{name}{labels} {value}");
            }
        };
        metric(
            "spool_records",
            "gauge",
            "Messages waiting in the spool for the server.",
            &[("", get(&self.spool_records))],
        );
        metric(
            "spool_bytes",
            "gauge",
            "Bytes of the spool on disk.",
            &[("", get(&self.spool_bytes))],
        );
        metric(
            "polls_total",
            "counter",
            "SNMP polls by result.",
            &[
                ("{result=\"ok\"}", get(&self.polls_ok)),
                ("{result=\"error\"}", get(&self.polls_failed)),
            ],
        );
        metric(
            "faults_open",
            "gauge",
            "Faults raised and not yet cleared.",
            &[("", get(&self.faults_open))],
        );
        metric(
            "uplink_errors_total",
            "counter",
            "Requests to the server that failed.",
            &[("", get(&self.uplink_errors))],
        );
        metric(
            "up",
            "gauge",
            "1 if the last request to the server succeeded.",
            &[("", get(&self.up))],
        );
        metric(
            "tunnel_up",
            "gauge",
            "1 while the remote-login tunnel to the relay is connected.",
            &[("", get(&self.tunnel_up))],
        );
        metric(
            "tunnel_connects_total",
            "counter",
            "Tunnel connections established to the relay.",
            &[("", get(&self.tunnel_connects))],
        );
        metric(
            "tunnel_channels_total",
            "counter",
            "Channels the relay opened, by result.",
            &[
                ("{result=\"accepted\"}", get(&self.tunnel_channels_accepted)),
                ("{result=\"refused\"}", get(&self.tunnel_channels_refused)),
                ("{result=\"failed\"}", get(&self.tunnel_channels_failed)),
            ],
        );
        metric(
            "tunnel_bytes_total",
            "counter",
            "Bytes carried through the tunnel, by direction.",
            &[
                (
                    "{direction=\"to_target\"}",
                    get(&self.tunnel_bytes_to_target),
                ),
                (
                    "{direction=\"from_target\"}",
                    get(&self.tunnel_bytes_from_target),
                ),
            ],
        );
        out
    }
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = stream.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let target = request.split_whitespace().nth(1).unwrap_or("");
            let response = if request.starts_with("GET ") && target == "/metrics" {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_prometheus_text() {
        let metrics = Arc::new(Metrics::default());
        metrics.polls_ok.store(3, Ordering::Relaxed);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, Arc::clone(&metrics)));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        let text = get("/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("outpost_agent_polls_total{result=\"ok\"} 3"));
        assert!(text.contains("outpost_agent_up 0"));
        assert!(text.contains("# TYPE outpost_agent_spool_records gauge"));
        assert!(text.contains("outpost_agent_tunnel_up 0"));
        assert!(text.contains("outpost_agent_tunnel_channels_total{result=\"refused\"} 0"));
        assert!(text.contains("outpost_agent_tunnel_bytes_total{direction=\"to_target\"} 0"));
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
