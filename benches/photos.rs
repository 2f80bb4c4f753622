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
    let mut group = c.benchmark_group("photos_12mp");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(20));
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
