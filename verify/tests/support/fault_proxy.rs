//! `FaultyRegistryProxy`: a tiny HTTP/1.1 forwarding proxy in front of the REAL test registry,
//! used only to inject faults the real registry cannot produce on demand (HTTP 5xx answers,
//! corrupted blob bodies, stalls). Everything it does not break it forwards unchanged to the
//! registry. It is a fault injector, not a registry double: with no fault set, every byte
//! comes from the real registry.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything unchanged.
    None,
    /// Answer every request with this HTTP status (for example 503).
    ServerError(u16),
    /// Forward, but flip the first byte of every blob body (lengths unchanged).
    CorruptBlobs,
    /// Accept the request and answer nothing for this long.
    Stall(Duration),
}

/// The proxy; dropping it stops accepting connections.
pub struct FaultyRegistryProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    stopped: Arc<AtomicBool>,
}

impl FaultyRegistryProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let fault = Arc::new(Mutex::new(fault));
        let stopped = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (thread_fault, thread_stopped) = (fault.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let fault = *thread_fault.lock().expect("fault");
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &upstream, fault);
                });
            }
        });
        FaultyRegistryProxy {
            port,
            fault,
            stopped,
        }
    }

    /// The proxy's `host:port`, to use in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Changes the fault for new connections.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }
}

impl Drop for FaultyRegistryProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut client: TcpStream, upstream: &str, fault: Fault) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("GET").to_owned(),
        parts.next().unwrap_or("/").to_owned(),
    );
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim().to_owned());
    match fault {
        Fault::ServerError(code) => {
            let body = br#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#;
            respond(
                &mut client,
                code,
                &[("Content-Type", "application/json".to_owned())],
                body,
                &method,
            )
        }
        Fault::Stall(duration) => {
            std::thread::sleep(duration);
            Ok(())
        }
        Fault::None | Fault::CorruptBlobs => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into();
            let url = format!("http://{upstream}{path}");
            let mut request = match method.as_str() {
                "HEAD" => agent.head(&url),
                _ => agent.get(&url),
            };
            if let Some(accept) = &accept {
                request = request.header("Accept", accept);
            }
            let Ok(mut response) = request.call() else {
                return respond(&mut client, 502, &[], b"", &method);
            };
            let status = response.status().as_u16();
            let headers: Vec<(&str, String)> =
                ["Content-Type", "Docker-Content-Digest", "Location"]
                    .into_iter()
                    .filter_map(|name| {
                        response
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(|v| (name, v.to_owned()))
                    })
                    .collect();
            let mut body = if method == "HEAD" {
                Vec::new()
            } else {
                response.body_mut().read_to_vec().unwrap_or_default()
            };
            if fault == Fault::CorruptBlobs
                && path.contains("/blobs/")
                && status == 200
                && let Some(first) = body.first_mut()
            {
                *first ^= 0x01;
            }
            respond(&mut client, status, &headers, &body, &method)
        }
    }
}

fn respond(
    client: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    method: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    client.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client.write_all(body)?;
    }
    client.flush()
}
