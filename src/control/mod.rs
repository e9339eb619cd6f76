//! The control socket: a Unix stream socket through which the CLI talks to a running server.
//!
//! Protocol (version 1): the client sends one request, a single line of JSON of at most
//! [`MAX_REQUEST_BYTES`] ending in `\n`, e.g. `{"version":1,"command":"stats"}`; the server
//! answers with one line of JSON and closes. A client that says nothing for
//! [`READ_TIMEOUT`], sends an oversized or unparsable request, or names an unknown version is
//! answered with an error (when possible) and cut off. Each connection is served on its own
//! short-lived thread, at most [`MAX_CONNECTIONS`] at once, so a silent client cannot stall
//! others, and none of this touches the packet path.

pub mod metrics;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request accepted, newline included.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long writing a response may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent connections served; more are refused at once.
pub const MAX_CONNECTIONS: usize = 16;

/// A request as it travels on the socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub version: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// What a client may ask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Version, uptime, backend, queues.
    Status,
    /// Counters, histograms, pools, failover.
    Stats,
    /// Leases, filtered, with paging.
    Leases {
        #[serde(default)]
        duid: Option<String>,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        offset: u64,
        #[serde(default = "default_limit")]
        limit: u64,
    },
    /// Re-read the configuration file and apply it.
    Reload,
}

fn default_limit() -> u64 {
    1000
}

/// The answer: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            ok: true,
            data: Some(data),
            error: None,
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            data: None,
            error: Some(msg.into()),
        }
    }
}

/// What the running server provides to the control socket.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Response;
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket group {0:?} not found in /etc/group")]
    UnknownGroup(String),
    #[error("control socket {path}: a server is already listening there")]
    InUse { path: PathBuf },
}

/// Look a group up by name in /etc/group (no NSS: appliances keep groups local).
fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// A listening control socket; dropping it stops accepting and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Bind `path` (mode 0660, owned by root and `group` when given) and serve in the background.
    pub fn start(
        path: &Path,
        group: Option<&str>,
        handler: Arc<dyn Handler>,
    ) -> Result<Self, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
        }
        // A stale socket from a crashed run is removed; a live one means another server.
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        let gid = match group {
            Some(g) => Some(group_id(g).ok_or_else(|| ControlError::UnknownGroup(g.to_owned()))?),
            None => None,
        };
        let listener = UnixListener::bind(path).map_err(io_err)?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io_err)?;
        }
        listener.set_nonblocking(true).map_err(io_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(listener, handler, stop2))
            .map_err(io_err)?;
        Ok(ControlServer {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, handler: Arc<dyn Handler>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let mut s = stream;
                    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = reply(&mut s, &Response::err("too many control connections"));
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let h = handler.clone();
                let a = active.clone();
                let spawned = thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        serve_connection(stream, &*h);
                        a.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("control socket: could not spawn a connection thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn reply(stream: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    stream.write_all(&line)
}

/// Read one request line of at most `MAX_REQUEST_BYTES`, or say why not.
fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_BYTES as u64));
    let mut line = Vec::with_capacity(256);
    match reader.read_until(b'\n', &mut line) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err("timed out waiting for a request".into())
        }
        Err(e) => return Err(format!("read error: {e}")),
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() >= MAX_REQUEST_BYTES {
            format!("request longer than {MAX_REQUEST_BYTES} bytes")
        } else {
            "request not terminated by a newline".into()
        });
    }
    let env: Envelope = serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))?;
    if env.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} not supported (this server speaks {PROTOCOL_VERSION})",
            env.version
        ));
    }
    Ok(env.request)
}

fn serve_connection(mut stream: UnixStream, handler: &dyn Handler) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(READ_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let response = match read_request(&stream) {
        Ok(req) => handler.handle(&req),
        Err(msg) => Response::err(msg),
    };
    let _ = reply(&mut stream, &response);
}

/// Send one request to the server at `path` and return its answer.
pub fn request(path: &Path, req: &Request) -> Result<Response, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to control socket {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_vec(&Envelope {
        version: PROTOCOL_VERSION,
        request: req.clone(),
    })
    .map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line)
        .map_err(|e| format!("control socket write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("control socket read: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("bad response from server: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, r: &Request) -> Response {
            Response::ok(serde_json::to_value(r).unwrap())
        }
    }

    fn sock(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xdhcp6-ctl-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn request_round_trip() {
        let p = sock("rt");
        let _srv = ControlServer::start(&p, None, Arc::new(Echo)).unwrap();
        let r = request(&p, &Request::Stats).unwrap();
        assert!(r.ok);
        assert_eq!(r.data.unwrap()["command"], "stats");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn silent_garbage_and_oversized_clients_are_cut_off() {
        let p = sock("bad");
        let _srv = ControlServer::start(&p, None, Arc::new(Echo)).unwrap();
        // Silent clients hold connections open; the server keeps answering others.
        let silent: Vec<_> = (0..4).map(|_| UnixStream::connect(&p).unwrap()).collect();
        let t = Instant::now();
        assert!(request(&p, &Request::Status).unwrap().ok);
        assert!(
            t.elapsed() < READ_TIMEOUT,
            "a silent client stalled another"
        );
        // Garbage gets an error answer.
        let mut g = UnixStream::connect(&p).unwrap();
        g.write_all(b"\x00\xffnot json\n").unwrap();
        let mut out = String::new();
        g.read_to_string(&mut out).unwrap();
        let r: Response = serde_json::from_str(&out).unwrap();
        assert!(!r.ok && r.error.unwrap().contains("bad request"));
        // Oversized requests are refused without reading them whole.
        let mut o = UnixStream::connect(&p).unwrap();
        let _ = o.write_all(&vec![b'a'; MAX_REQUEST_BYTES * 4]);
        let mut out = String::new();
        let _ = o.read_to_string(&mut out);
        let r: Response = serde_json::from_str(&out).unwrap();
        assert!(r.error.unwrap().contains("longer than"));
        // Wrong version.
        let mut v = UnixStream::connect(&p).unwrap();
        v.write_all(b"{\"version\":9,\"command\":\"stats\"}\n")
            .unwrap();
        let mut out = String::new();
        v.read_to_string(&mut out).unwrap();
        assert!(out.contains("version 9 not supported"));
        drop(silent);
        assert!(request(&p, &Request::Reload).unwrap().ok);
    }

    #[test]
    fn a_live_socket_is_not_stolen() {
        let p = sock("live");
        let _a = ControlServer::start(&p, None, Arc::new(Echo)).unwrap();
        assert!(matches!(
            ControlServer::start(&p, None, Arc::new(Echo)),
            Err(ControlError::InUse { .. })
        ));
    }
}
