//! Load check for photo uploads against a running citypin on this machine: N concurrent
//! multipart reports, each with one 12-megapixel phone JPEG. Prints the status counts, the
//! slowest answer per status, and the server's peak resident memory (`VmHWM`).
//!
//! Usage: `cargo run --release --example photos_load -- http://127.0.0.1:18089 SERVER_PID [N]`
//! (`benches/photos-load.sh` starts the server and runs this).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use citypin::photos::fixtures;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(pid)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: photos_load BASE_URL SERVER_PID [N]");
        std::process::exit(2);
    };
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let jpeg = bytes::Bytes::from(fixtures::phone_photo(4000, 3000));
    println!(
        "photo: {:.1} MB, 4000 × 3000; {n} concurrent uploads",
        jpeg.len() as f64 / 1e6
    );
    let started = Instant::now();
    let uploads = (0..n).map(|i| {
        // Each upload from its own loopback address (127.0.0.0/8 is all loopback on Linux), as
        // n citizens' phones would be: citypin admits at most two uploads per address.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .local_address(std::net::IpAddr::from([
                127,
                0,
                1 + (i / 250) as u8,
                1 + (i % 250) as u8,
            ]))
            .build()
            .expect("client");
        let jpeg = jpeg.clone();
        let url = format!("{base}/api/v1/reports");
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new()
                .text("service_code", "pothole")
                .text("lat", "34.0522")
                .text("lon", "-118.2437")
                .text("description", format!("load test {i}"))
                .part(
                    "photo",
                    reqwest::multipart::Part::stream(jpeg)
                        .file_name("IMG.jpg")
                        .mime_str("image/jpeg")
                        .expect("mime"),
                );
            let t = Instant::now();
            let status = match client
                .post(url)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .multipart(form)
                .send()
                .await
            {
                Ok(res) => res.status().as_u16(),
                Err(_) => 0,
            };
            (status, t.elapsed())
        })
    });
    let results = futures_util::future::join_all(uploads).await;
    let mut by_status: BTreeMap<u16, (usize, Duration)> = BTreeMap::new();
    for (status, took) in results.into_iter().flatten() {
        let e = by_status.entry(status).or_default();
        e.0 += 1;
        e.1 = e.1.max(took);
    }
    println!("all answered in {:.2} s", started.elapsed().as_secs_f64());
    for (status, (count, slowest)) in &by_status {
        println!(
            "  {status}: {count} (slowest {:.2} s)",
            slowest.as_secs_f64()
        );
    }
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for line in proc_status
        .lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
    {
        println!("server {line}");
    }
    // One line for the benchmark suite's goals table (scripts/bench.sh).
    let peak_kb: Option<f64> = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    if let Some(kb) = peak_kb {
        let mib = kb / 1024.0;
        println!(
            "goal | server peak RSS, {n} concurrent 12 MP uploads (issue 9) | < 1 GB | {mib:.0} MiB | {} |",
            if mib < 1024.0 { "yes" } else { "**no**" }
        );
    }
}
