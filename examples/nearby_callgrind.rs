//! `GET /api/v1/incidents/nearby` through the whole router (middleware, extractors, handler,
//! serializer) in process, without sockets or a database, so callgrind can count the
//! instructions of one request deterministically, even on a loaded machine:
//!
//! ```sh
//! cargo build --release --example nearby_callgrind
//! valgrind --tool=callgrind --toggle-collect='*run_queries*' \
//!     target/release/examples/nearby_callgrind 500   # instructions ÷ 500 = one request
//! DUMP=/tmp/a.json target/release/examples/nearby_callgrind 300   # the bodies, to diff
//! ```
//!
//! 100,000 synthetic incidents over a 0.1° square of Los Angeles, a third of them open; each
//! query asks for the open ones within 1 km (50 features). Ids and times are deterministic.
use std::sync::Arc;

use citypin::app::AppState;
use citypin::catalogue::Catalogue;
use citypin::config::Settings;
use citypin::domain::Status;
use citypin::geo::{Position, REPORT_H3_RESOLUTION};
use citypin::spatial_index::{Incident, SpatialIndex};
use tower::ServiceExt;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[inline(never)]
fn run_queries(rt: &tokio::runtime::Runtime, app: &axum::Router, n: usize, rng: &mut Rng) -> usize {
    let mut bytes = 0;
    for _ in 0..n {
        let lat = 34.0 + rng.next() * 0.1;
        let lon = -118.3 + rng.next() * 0.1;
        let uri = format!(
            "/api/v1/incidents/nearby?lat={lat:.6}&lon={lon:.6}&radius_m=1000&limit=50&status=open"
        );
        let req = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .expect("profile setup");
        bytes += rt.block_on(async {
            let res = app.clone().oneshot(req).await.expect("profile setup");
            assert_eq!(res.status(), 200);
            let b = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .expect("profile setup");
            if let Ok(path) = std::env::var("DUMP") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .expect("profile setup");
                f.write_all(&b).expect("profile setup");
                f.write_all(b"\n").expect("profile setup");
            }
            b.len()
        });
    }
    bytes
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1000, |s| s.parse().expect("profile setup"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("profile setup");
    let _g = rt.enter();
    let settings = Settings::default();
    let catalogue = Catalogue::load(None).expect("profile setup");
    let codes: Vec<String> = catalogue
        .all()
        .iter()
        .map(|s| s.service_code.clone())
        .collect();
    let mut rng = Rng(42);
    let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("profile setup");
    let incidents: Vec<Incident> = (0..100_000)
        .map(|i| {
            let position = Position::new(-118.3 + rng.next() * 0.1, 34.0 + rng.next() * 0.1)
                .expect("profile setup");
            let code = &codes[i % codes.len()];
            Incident {
                id: uuid::Uuid::from_u128(
                    0x0190_0000_0000_7000_8000_0000_0000_0000 + (i as u128) * 7919,
                ),
                reference: Arc::from("CP-7K3M-9QXD"),
                position,
                service_code: Arc::from(code.as_str()),
                group: Arc::from(catalogue.get(code).map_or("Other", |s| s.group.as_str())),
                status: if i % 3 == 0 {
                    Status::New
                } else {
                    Status::Fixed
                },
                requested_at: t + chrono::Duration::microseconds(
                    (i as i64 % 5) * 250_000 + i as i64 % 3,
                ),
                updated_at: t,
                supporters: (i % 7) as i32,
                duplicate_of: None,
                h3_cell: position.h3_cell(REPORT_H3_RESOLUTION).into(),
                change_seq: i as i64,
            }
        })
        .collect();
    let spatial_index = Arc::new(SpatialIndex::from_incidents(incidents));
    let pool =
        sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("profile setup");
    let tile_cache = Arc::new(citypin::tiles::cache::TileCache::new(
        1 << 20,
        spatial_index.subscribe(),
    ));
    let tile_pyramid = Arc::new(citypin::tiles::pyramid::Pyramid::new(spatial_index.clone()));
    let state = AppState {
        pool,
        photos: Arc::new(citypin::photos::Photos::new(&settings).expect("profile setup")),
        intake_admission: Arc::new(tokio::sync::Semaphore::new(1)),
        settings: Arc::new(settings),
        catalogue: Arc::new(catalogue),
        spatial_index,
        metrics: Arc::default(),
        tile_cache,
        tile_pyramid,
    };
    let app = citypin::app::router(state);
    let bytes = run_queries(&rt, &app, n, &mut rng);
    println!("{n} requests, {bytes} bytes");
}
