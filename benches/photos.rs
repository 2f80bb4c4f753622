//! Photos processed per second for a typical 12-megapixel phone JPEG, next to the baseline of
//! only decoding it (what any image service pays), so the ratio shows what the safety steps
//! (header check, limits, orientation, two re-encodes) add.
//!
//! Run: `cargo bench --bench photos`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use citypin::photos::{fixtures, process};

fn photos(c: &mut Criterion) {
    // 4000 × 3000: the size of a typical phone camera's photo.
    let jpeg = fixtures::with_exif(
        &fixtures::phone_photo(4000, 3000),
        Some(6),
        Some((48.85, 2.29)),
    );
    eprintln!("12-megapixel test JPEG: {:.1} MB", jpeg.len() as f64 / 1e6);
    // Photos per second on one core, side by side with decoding alone, for the suite's table.
    let rate = |f: &dyn Fn()| {
        let started = std::time::Instant::now();
        for _ in 0..3 {
            f();
        }
        3.0 / started.elapsed().as_secs_f64()
    };
    let citypin = rate(&|| {
        process::process(&jpeg).expect("process");
    });
    let decode = rate(&|| {
        image::load_from_memory(&jpeg).expect("decode");
    });
    println!(
        "goal | 12 MP phone JPEGs processed per second, one core (issue 9) | report | {citypin:.2}/s (decode alone {decode:.2}/s, {:.2}×) | – |",
        citypin / decode
    );
    let mut group = c.benchmark_group("photos_12mp");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline_decode_only", |b| {
        b.iter(|| image::load_from_memory(&jpeg).expect("decode"));
    });
    group.bench_function("citypin_process", |b| {
        b.iter(|| process::process(&jpeg).expect("process"));
    });
    group.finish();
}

criterion_group!(benches, photos);
criterion_main!(benches);
