//! The server loop's limits, over real sockets: slow headers, idle keep-alive connections and
//! the connection cap.

use std::time::{Duration, Instant};

use citypin::config::Settings;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Reads until the server closes the connection or `limit` passes; returns what was read and
/// whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (out, ended.is_ok())
}

fn quick(settings: Settings) -> Settings {
    Settings {
        header_timeout: Duration::from_secs(1),
        ..settings
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_client_trickling_its_headers_is_cut_off(pool: PgPool) {
    let app = TestApp::spawn_with(pool, quick(Settings::default())).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("first header lines");
    // One more header byte now and then, never the blank line that ends them.
    let writer = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream.write_all(b"X").await.is_err() {
                break;
            }
        }
        stream
    });
    let mut stream = writer.await.expect("writer");
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the server closed the connection");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "soon after the 1 s header timeout: {:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_idle_keep_alive_connection_is_closed(pool: PgPool) {
    let app = TestApp::spawn_with(pool, quick(Settings::default())).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "answered first: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(closed, "then closed, the connection having sat idle");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_connection_past_the_cap_is_closed_and_the_others_are_served(pool: PgPool) {
    let settings = Settings {
        max_connections: 2,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(pool, settings).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(app.addr)
        .await
        .expect("the socket accepts");
    let _ = third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "closed unanswered: {answer:?}");
    // The two within the cap are served.
    let first = &mut open[0];
    first
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let (answer, _) = read_until_closed(first, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // A closed one frees its place.
    drop(open);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("a new connection is served");
    assert_eq!(res.status(), 200);
}
