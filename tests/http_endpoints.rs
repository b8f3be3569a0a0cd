//! The HTTP surface under pressure and without credentials: many slow clients holding
//! connections and many lookups at once never delay the probes, and a client that never
//! finishes its headers is cut off; erasure needs a token.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn probes_answer_promptly_while_slow_clients_hold_connections() {
    let n = Names::new("http");
    create_topics(&n, 2);
    let mut svc = Service::start(&n, &[]);
    svc.wait_ready(Duration::from_secs(60));
    // 300 clients that send half a request and stall (slowloris).
    let slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&svc.http).unwrap();
            s.write_all(b"GET /v1/leads/x HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // 64 lookups at once, over the /v1 concurrency limit: some may be shed with 503, none hang.
    let lookups: Vec<_> = (0..64)
        .map(|i| {
            let addr = svc.http.clone();
            std::thread::spawn(move || {
                http_get(&addr, &format!("/v1/leads/nobody-{i}")).map(|r| r.0)
            })
        })
        .collect();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let started = Instant::now();
        let (status, _) = svc.get(path).expect("an answer");
        let took = started.elapsed();
        assert_eq!(status, 200, "{path}");
        assert!(
            took < Duration::from_secs(2),
            "{path} took {took:?} behind slow clients"
        );
    }
    for l in lookups {
        let status = l.join().unwrap().expect("every lookup is answered");
        assert!(status == 404 || status == 503, "{status}");
    }
    // A client that never finishes its headers is cut off (header read timeout, 10 s).
    let mut stalled = slow.into_iter().next().unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut stalled, &mut buf).unwrap_or(0);
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        waited < Duration::from_secs(25),
        "a stalled client kept its connection {waited:?}"
    );
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Erasure over HTTP is off without a token.
    let (status, body) = http_request(&svc.http, "DELETE", "/v1/leads/someone", "").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("set http_token"), "{body}");
}
