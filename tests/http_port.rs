//! The HTTP port outlives what clients and the machine do to it: no file descriptors
//! left for a moment, and clients that open connections and never finish a request.
//!
//! Both tests run the server in this test process; they take turns, since one of them
//! lowers the process's file descriptor limit.

use personalizer::config::Config;
use personalizer::http_port::{self, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use personalizer::telemetry::Telemetry;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The log lines of this test process, to wait for what the server says.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        tracing_subscriber::fmt()
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .with_ansi(false)
            .init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn wait_for_log(needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one GET and returns the status line, or panics after `within`.
fn get_status(address: &str, path: &str, within: Duration) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("no answer to GET {path} within {within:?}: {e}"));
    response.lines().next().unwrap_or_default().to_string()
}

fn server() -> http_port::HttpServer {
    let telemetry = Arc::new(Telemetry::new(&Config::default()));
    http_port::serve(
        "127.0.0.1:0",
        telemetry,
        personalizer::api::ApiSlot::default(),
    )
    .unwrap()
}

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a rlimit the call fills in.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_nofile_limit(limit: libc::rlimit) {
    // SAFETY: a valid pointer to a rlimit; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

#[test]
fn the_port_survives_running_out_of_file_descriptors() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    logs();
    let server = server();
    let address = server.local_addr().to_string();
    assert!(get_status(&address, "/healthz", Duration::from_secs(5)).contains("200"));

    let saved = nofile_limit();
    set_nofile_limit(libc::rlimit {
        rlim_cur: 512,
        rlim_max: saved.rlim_max,
    });
    let mut hogs = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hogs.push(file);
    }
    // One descriptor for the client's socket: the server has none left to accept it.
    hogs.pop();
    let mut client = TcpStream::connect(&address).unwrap();
    wait_for_log("cannot accept an HTTP connection", Duration::from_secs(10));
    drop(hogs);
    set_nofile_limit(saved);

    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        client,
        "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    client
        .read_to_string(&mut response)
        .expect("the connection that waited is served once descriptors are free");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(get_status(&address, "/metrics", Duration::from_secs(5)).contains("200"));
}

#[test]
fn clients_that_never_finish_a_request_are_dropped_and_others_are_served() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = server();
    let address = server.local_addr().to_string();
    let started = Instant::now();
    // More half-sent requests than the server serves at once.
    let mut slow: Vec<TcpStream> = (0..MAX_CONNECTIONS + 44)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Those being served are closed once their headers are overdue.
    let mut closed = 0;
    for stream in slow.iter_mut().take(MAX_CONNECTIONS) {
        stream
            .set_read_timeout(Some(HEADER_READ_TIMEOUT + Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 256];
        match stream.read(&mut buffer) {
            Ok(_) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(e) => panic!(
                "a half-sent request was still held after {:?}: {e}",
                started.elapsed()
            ),
        }
    }
    assert_eq!(closed, MAX_CONNECTIONS);
    // A well-behaved client is served while the rest of the slow ones wait their turn.
    let status = get_status(&address, "/readyz", HEADER_READ_TIMEOUT * 3);
    assert!(status.starts_with("HTTP/1.1"), "{status}");
    drop(slow);
    assert!(get_status(&address, "/healthz", Duration::from_secs(5)).contains("200"));
}
