//! Typed settings, loaded once from the environment at start-up.
//!
//! Every `CITYPIN_*` variable must be known: a typo stops start-up instead of being ignored.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Every environment variable citypin reads, with what it means.
const KNOWN: &[(&str, &str)] = &[
    (
        "CITYPIN_LISTEN",
        "address to serve on (default 127.0.0.1:8080)",
    ),
    (
        "CITYPIN_DATA_DIR",
        "where the embedded PostGIS cluster lives when DATABASE_URL is unset (default ./.citypin)",
    ),
    (
        "CITYPIN_SAMPLE",
        "a GeoReport CSV loaded, shifted to today, when the database has no reports",
    ),
    (
        "CITYPIN_AREAS",
        "a GeoJSON file of (multi)polygons served as the OGC `areas` collection, loaded at start-up",
    ),
    (
        "CITYPIN_SHARED_DATA",
        "folder of third-party data read where it lies: the LA 311 sample and the boundaries the web map draws (default ../shared/data)",
    ),
    (
        "CITYPIN_CATALOGUE",
        "the service catalogue JSON file (default: the committed config/services.json)",
    ),
    ("CITYPIN_LOG_FORMAT", "`pretty` (default) or `json`"),
    (
        "CITYPIN_PG_BIN",
        "directory holding initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)",
    ),
    (
        "CITYPIN_DB_MAX_CONNECTIONS",
        "connection pool size (default 16)",
    ),
    (
        "CITYPIN_WEB_ROOT",
        "directory of the built web map (default ./web-map/dist)",
    ),
    (
        "CITYPIN_ASSETS_DIR",
        "directory of styles and basemap assets (default ./tiles)",
    ),
    (
        "CITYPIN_PUBLIC_URL",
        "external base URL used in links: Open311 discovery, OGC links, tracking URLs (default http://LISTEN); set it behind a reverse proxy",
    ),
    (
        "CITYPIN_HEADER_TIMEOUT_SECS",
        "seconds a request's headers may take to arrive, counted from when the connection is ready for them; an idle keep-alive connection is closed after the same time (default 10)",
    ),
    (
        "CITYPIN_MAX_CONNECTIONS",
        "connections open at once; one more is closed at once (default 1024)",
    ),
    (
        "CITYPIN_UPLOAD_IDLE_SECS",
        "seconds a photo upload may send nothing before it is refused with 408 (default 10)",
    ),
    (
        "CITYPIN_UPLOAD_MIN_BYTES_PER_SEC",
        "after CITYPIN_UPLOAD_IDLE_SECS, the slowest average rate a photo upload may arrive at before it is refused with 408 (default 16384)",
    ),
    (
        "CITYPIN_TRUSTED_PROXIES",
        "comma-separated addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) of reverse proxies whose Forwarded / X-Forwarded-Proto and X-Forwarded-Host headers set the base URL of discovery and OGC links (default: none; the headers are ignored)",
    ),
    (
        "CITYPIN_PHOTO_DIR",
        "where photo files are kept (default DATA_DIR/photos)",
    ),
    (
        "CITYPIN_PHOTO_STORE",
        "`local` (default: files under CITYPIN_PHOTO_DIR), `s3://BUCKET[/PREFIX]`, or `s3` with CITYPIN_S3_BUCKET",
    ),
    (
        "CITYPIN_S3_BUCKET",
        "the bucket when CITYPIN_PHOTO_STORE=s3",
    ),
    (
        "CITYPIN_S3_ENDPOINT",
        "S3-compatible endpoint, e.g. http://minio:9000 (default AWS_ENDPOINT_URL, else https://s3.REGION.amazonaws.com)",
    ),
    (
        "CITYPIN_S3_REGION",
        "the bucket's region (default AWS_REGION or AWS_DEFAULT_REGION, else us-east-1)",
    ),
    (
        "CITYPIN_S3_PATH_STYLE",
        "true: ENDPOINT/BUCKET/KEY (MinIO and the like); false: BUCKET.HOST/KEY (default true when an endpoint is set)",
    ),
    (
        "CITYPIN_S3_ACCESS_KEY_ID",
        "S3 access key (default AWS_ACCESS_KEY_ID)",
    ),
    (
        "CITYPIN_S3_SECRET_ACCESS_KEY",
        "S3 secret key (default AWS_SECRET_ACCESS_KEY); never logged",
    ),
    (
        "CITYPIN_S3_SESSION_TOKEN",
        "temporary-credential token (default AWS_SESSION_TOKEN); never logged",
    ),
    (
        "CITYPIN_PHOTO_ORPHAN_GRACE_SECS",
        "seconds a photo file nobody references is kept before the background sweep removes it; longer than any upload takes to commit, at least 300 (default 3600)",
    ),
    (
        "CITYPIN_SNAPSHOT_INTERVAL_SECS",
        "seconds between generations of the export snapshot files served at /api/v1/export/snapshots/ (one replica writes each); 0 turns snapshots off (default 3600)",
    ),
    (
        "CITYPIN_SNAPSHOT_DIR",
        "where the export snapshot files are written and served from; replicas must share it (default DATA_DIR/snapshots)",
    ),
    (
        "CITYPIN_RECONCILE_SECS",
        "seconds between index reconciliations (default 5)",
    ),
];

/// The service's settings. Built by [`Settings::from_env`]; tests build it directly.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// An existing PostgreSQL+PostGIS server; `None` runs the embedded cluster in `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub sample: Option<PathBuf>,
    /// Areas (e.g. council districts) loaded at start-up, replacing the stored ones.
    pub areas: Option<PathBuf>,
    /// Third-party data nobody here wrote, read where it lies, never copied into the repository
    /// (see [`shared_data`]).
    pub shared_data: PathBuf,
    pub catalogue: Option<PathBuf>,
    pub log_json: bool,
    pub pg_bin: Option<PathBuf>,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub shutdown_deadline: Duration,
    pub web_root: PathBuf,
    pub assets_dir: PathBuf,
    pub public_url: String,
    /// How long a request's headers may take (and a keep-alive connection may idle).
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a photo upload may send nothing.
    pub upload_idle: Duration,
    /// The slowest average rate a photo upload may arrive at, after `upload_idle`.
    pub upload_min_bytes_per_sec: u64,
    /// Reverse proxies whose forwarding headers name the public base URL.
    pub trusted_proxies: Vec<crate::net::ProxyNet>,
    pub reconcile_every: Duration,
    /// Where photo files are kept; `None` means `data_dir/photos`.
    pub photo_dir: Option<PathBuf>,
    /// Which photo store: local files (in `photo_dir`) or an S3-compatible bucket.
    pub photo_store: PhotoStoreSetting,
    /// How old a candidate orphan photo file must be before the sweep may remove it
    /// (`photos::sweep`).
    pub photo_orphan_grace: Duration,
    /// How often a generation of export snapshots is written; zero: never (`exports::snapshots`).
    pub snapshot_interval: Duration,
    /// Where export snapshots live; `None` means `data_dir/snapshots`.
    pub snapshot_dir: Option<PathBuf>,
}

/// Where photos live.
#[derive(Clone, Debug, Default)]
pub enum PhotoStoreSetting {
    #[default]
    Local,
    S3(Box<S3Settings>),
}

/// An S3-compatible bucket, checked at load so a bad setting stops start-up.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub endpoint: reqwest::Url,
    pub bucket: String,
    /// Prepended to every object key; empty or ending in `/`.
    pub prefix: String,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// A credential: `Debug` prints no part of it, so settings can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A setting that could not be used, named so the operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting {0}; known settings: {1}")]
    Unknown(String, String),
    #[error("setting {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl Default for Settings {
    fn default() -> Self {
        let listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
        Self {
            listen,
            database_url: None,
            data_dir: PathBuf::from(".citypin"),
            sample: None,
            areas: None,
            shared_data: PathBuf::from(shared_data::DEFAULT),
            catalogue: None,
            log_json: false,
            pg_bin: None,
            db_max_connections: 16,
            db_acquire_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 64 * 1024,
            shutdown_deadline: Duration::from_secs(10),
            web_root: PathBuf::from("web-map/dist"),
            assets_dir: PathBuf::from("tiles"),
            public_url: format!("http://{listen}"),
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            upload_idle: Duration::from_secs(10),
            upload_min_bytes_per_sec: 16 * 1024,
            reconcile_every: Duration::from_secs(5),
            photo_dir: None,
            photo_store: PhotoStoreSetting::Local,
            photo_orphan_grace: crate::photos::sweep::DEFAULT_GRACE,
            snapshot_interval: Duration::from_secs(3600),
            snapshot_dir: None,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds settings from `(name, value)` pairs; unknown `CITYPIN_*` names are an error.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut s = Self::default();
        let mut public_url = None;
        // S3 settings: `CITYPIN_S3_*` wins over the standard `AWS_*` variable of the same meaning.
        let mut s3 = std::collections::HashMap::<String, String>::new();
        let mut store = None;
        for (name, value) in vars {
            if let Some(aws) = name.strip_prefix("AWS_") {
                if !value.is_empty() {
                    s3.entry(aws.to_owned()).or_insert(value);
                }
                continue;
            }
            if let Some(own) = name.strip_prefix("CITYPIN_S3_") {
                let known = KNOWN.iter().any(|(k, _)| *k == name);
                if known {
                    if !value.is_empty() {
                        s3.insert(own.to_owned(), value);
                    }
                    continue;
                }
            }
            if name == "DATABASE_URL" {
                if !value.is_empty() {
                    s.database_url = Some(value);
                }
                continue;
            }
            if !name.starts_with("CITYPIN_") {
                continue;
            }
            match name.as_str() {
                "CITYPIN_LISTEN" => s.listen = parse("CITYPIN_LISTEN", &value)?,
                "CITYPIN_DATA_DIR" => s.data_dir = PathBuf::from(value),
                "CITYPIN_SAMPLE" => s.sample = (!value.is_empty()).then(|| PathBuf::from(value)),
                "CITYPIN_AREAS" => s.areas = (!value.is_empty()).then(|| PathBuf::from(value)),
                "CITYPIN_SHARED_DATA" => s.shared_data = PathBuf::from(value),
                "CITYPIN_CATALOGUE" => s.catalogue = Some(PathBuf::from(value)),
                "CITYPIN_LOG_FORMAT" => {
                    s.log_json = match value.as_str() {
                        "json" => true,
                        "pretty" => false,
                        _ => {
                            return Err(invalid(
                                "CITYPIN_LOG_FORMAT",
                                &value,
                                "use json or pretty",
                            ));
                        }
                    }
                }
                "CITYPIN_PG_BIN" => s.pg_bin = Some(PathBuf::from(value)),
                "CITYPIN_DB_MAX_CONNECTIONS" => {
                    s.db_max_connections = parse("CITYPIN_DB_MAX_CONNECTIONS", &value)?;
                }
                "CITYPIN_WEB_ROOT" => s.web_root = PathBuf::from(value),
                "CITYPIN_ASSETS_DIR" => s.assets_dir = PathBuf::from(value),
                "CITYPIN_PHOTO_DIR" => {
                    s.photo_dir = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                "CITYPIN_PHOTO_STORE" => store = Some(value),
                "CITYPIN_PUBLIC_URL" => public_url = Some(value.trim_end_matches('/').to_owned()),
                "CITYPIN_HEADER_TIMEOUT_SECS" => {
                    let secs: u64 = parse("CITYPIN_HEADER_TIMEOUT_SECS", &value)?;
                    s.header_timeout = Duration::from_secs(secs.max(1));
                }
                "CITYPIN_MAX_CONNECTIONS" => {
                    s.max_connections = parse::<usize>("CITYPIN_MAX_CONNECTIONS", &value)?.max(1);
                }
                "CITYPIN_UPLOAD_IDLE_SECS" => {
                    let secs: u64 = parse("CITYPIN_UPLOAD_IDLE_SECS", &value)?;
                    s.upload_idle = Duration::from_secs(secs.max(1));
                }
                "CITYPIN_UPLOAD_MIN_BYTES_PER_SEC" => {
                    s.upload_min_bytes_per_sec = parse("CITYPIN_UPLOAD_MIN_BYTES_PER_SEC", &value)?;
                }
                "CITYPIN_TRUSTED_PROXIES" => {
                    s.trusted_proxies = crate::net::parse_list(&value)
                        .map_err(|e| invalid("CITYPIN_TRUSTED_PROXIES", &value, &e.to_string()))?;
                }
                "CITYPIN_PHOTO_ORPHAN_GRACE_SECS" => s.photo_orphan_grace = orphan_grace(&value)?,
                "CITYPIN_SNAPSHOT_INTERVAL_SECS" => {
                    s.snapshot_interval =
                        Duration::from_secs(parse("CITYPIN_SNAPSHOT_INTERVAL_SECS", &value)?);
                }
                "CITYPIN_SNAPSHOT_DIR" => {
                    s.snapshot_dir = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                "CITYPIN_RECONCILE_SECS" => {
                    let secs: u64 = parse("CITYPIN_RECONCILE_SECS", &value)?;
                    s.reconcile_every = Duration::from_secs(secs.max(1));
                }
                _ => {
                    let known: Vec<&str> = KNOWN.iter().map(|(k, _)| *k).collect();
                    return Err(ConfigError::Unknown(name, known.join(", ")));
                }
            }
        }
        s.public_url = public_url.unwrap_or_else(|| format!("http://{}", s.listen));
        s.photo_store = photo_store(store.as_deref(), &mut s3)?;
        Ok(s)
    }

    /// A help text listing every setting.
    pub fn help() -> String {
        use std::fmt::Write;
        KNOWN.iter().fold(String::new(), |mut out, (k, v)| {
            let _ = writeln!(out, "  {k:<28} {v}");
            out
        })
    }
}

/// `CITYPIN_PHOTO_STORE` and the S3 variables (keyed without their `CITYPIN_S3_`/`AWS_` prefix).
/// The orphan sweep's grace period, refused below the minimum: a shorter grace could remove a
/// file an upload is about to reference.
fn orphan_grace(value: &str) -> Result<Duration, ConfigError> {
    let secs: u64 = parse("CITYPIN_PHOTO_ORPHAN_GRACE_SECS", value)?;
    let min = crate::photos::sweep::MIN_GRACE.as_secs();
    if secs < min {
        return Err(invalid(
            "CITYPIN_PHOTO_ORPHAN_GRACE_SECS",
            value,
            &format!(
                "at least {min}: a shorter grace could remove a file an upload is about to commit"
            ),
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn photo_store(
    store: Option<&str>,
    s3: &mut std::collections::HashMap<String, String>,
) -> Result<PhotoStoreSetting, ConfigError> {
    const NAME: &str = "CITYPIN_PHOTO_STORE";
    let (bucket, prefix) = match store.map(str::trim) {
        None | Some("" | "local") => return Ok(PhotoStoreSetting::Local),
        Some("s3") => {
            let bucket = s3.remove("BUCKET").ok_or_else(|| {
                invalid(
                    NAME,
                    "s3",
                    "set CITYPIN_S3_BUCKET, or use s3://BUCKET[/PREFIX]",
                )
            })?;
            (bucket, String::new())
        }
        Some(url) => {
            let rest = url
                .strip_prefix("s3://")
                .ok_or_else(|| invalid(NAME, url, "use local, s3, or s3://BUCKET[/PREFIX]"))?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (bucket.to_owned(), prefix.trim_matches('/').to_owned())
        }
    };
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(invalid(
            NAME,
            &bucket,
            "a bucket name is 3 to 63 lower-case letters, digits, dots or hyphens",
        ));
    }
    let prefix = if prefix.is_empty() {
        prefix
    } else {
        format!("{prefix}/")
    };
    let region = s3
        .remove("REGION")
        .or_else(|| s3.remove("DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint_given = s3
        .get("ENDPOINT")
        .or_else(|| s3.get("ENDPOINT_URL"))
        .cloned();
    let endpoint_text = endpoint_given
        .clone()
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let endpoint: reqwest::Url = endpoint_text
        .parse()
        .ok()
        .filter(|u: &reqwest::Url| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| {
            invalid(
                "CITYPIN_S3_ENDPOINT",
                &endpoint_text,
                "must be an http:// or https:// URL",
            )
        })?;
    // The endpoint is logged at start-up: it must not carry a password.
    if !endpoint.username().is_empty() || endpoint.password().is_some() {
        return Err(invalid(
            "CITYPIN_S3_ENDPOINT",
            "(not shown: it holds credentials)",
            "must not hold credentials; use CITYPIN_S3_ACCESS_KEY_ID and CITYPIN_S3_SECRET_ACCESS_KEY",
        ));
    }
    let path_style = match s3.remove("PATH_STYLE") {
        None => endpoint_given.is_some(),
        Some(v) => parse("CITYPIN_S3_PATH_STYLE", &v)?,
    };
    let missing = |what: &str| {
        invalid(
            NAME,
            store.unwrap_or_default(),
            &format!("an S3 store needs CITYPIN_S3_{what} (or AWS_{what})"),
        )
    };
    Ok(PhotoStoreSetting::S3(Box::new(S3Settings {
        endpoint,
        bucket,
        prefix,
        region,
        path_style,
        access_key_id: s3
            .remove("ACCESS_KEY_ID")
            .ok_or_else(|| missing("ACCESS_KEY_ID"))?,
        secret_access_key: Secret(
            s3.remove("SECRET_ACCESS_KEY")
                .ok_or_else(|| missing("SECRET_ACCESS_KEY"))?,
        ),
        session_token: s3.remove("SESSION_TOKEN").map(Secret),
    })))
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| invalid(name, value, &e.to_string()))
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The shared data folder: real data nobody on the team wrote (the Los Angeles 311 sample and
/// boundaries), kept beside the repository (`../shared/data`, also in CI) and read from there at
/// set-up, test and bench time. Nothing from it, or derived from it, is committed.
pub mod shared_data {
    use std::path::PathBuf;

    /// `CITYPIN_SHARED_DATA`'s default, relative to the working directory (the repository root).
    pub const DEFAULT: &str = "../shared/data";
    /// The LA 311 sample: ~30,000 real GeoReport-shaped rows (`citypin import`, the demo city,
    /// `citypin generate`'s source).
    pub const LA311_CSV: &str = "la311/la311_normalized.csv";
    /// The 15 LA council districts (2012), `properties.name` = district number.
    pub const LA_COUNCIL_DISTRICTS: &str = "la311/la-city-council-districts-2012.json";
    /// The 99 LA neighbourhood councils (2019), `properties.nc_id` and `name`.
    pub const LA_NEIGHBORHOOD_COUNCILS: &str = "la311/nc-boundary-2019-modified.json";

    /// For tests, benches and examples: the shared data folder, `CITYPIN_SHARED_DATA` if set,
    /// else `../shared/data` beside this package. Panics naming the path when it is missing, so a
    /// test that needs the data fails instead of passing without it.
    pub fn dir() -> PathBuf {
        let dir = std::env::var_os("CITYPIN_SHARED_DATA").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT),
            PathBuf::from,
        );
        assert!(
            dir.is_dir(),
            "the shared data folder {} is missing: set CITYPIN_SHARED_DATA, or put a copy of shared/ beside the repository (as CI does)",
            dir.display()
        );
        dir
    }

    /// For tests, benches and examples: `relative` inside [`dir`]; panics naming the path when
    /// the file is missing.
    pub fn file(relative: &str) -> PathBuf {
        let path = dir().join(relative);
        assert!(
            path.is_file(),
            "{} is missing from the shared data folder (CITYPIN_SHARED_DATA)",
            path.display()
        );
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_citypin_setting_is_rejected_by_name() {
        let err = Settings::from_vars(vars(&[("CITYPIN_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("CITYPIN_LISTN"));
    }

    #[test]
    fn bad_listen_address_names_the_setting() {
        let err = Settings::from_vars(vars(&[("CITYPIN_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("CITYPIN_LISTEN"));
    }

    #[test]
    fn an_s3_store_takes_its_own_settings_over_aws_ones_and_never_prints_the_secret() {
        let s = Settings::from_vars(vars(&[
            ("CITYPIN_PHOTO_STORE", "s3://city-photos/prod/"),
            ("AWS_REGION", "eu-west-3"),
            ("CITYPIN_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "aws-key"),
            ("CITYPIN_S3_ACCESS_KEY_ID", "own-key"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2-secret"),
        ]))
        .unwrap();
        let PhotoStoreSetting::S3(s3) = &s.photo_store else {
            panic!("expected an S3 store");
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str(), s3.region.as_str()),
            ("city-photos", "prod/", "eu-west-3")
        );
        assert_eq!(s3.access_key_id, "own-key");
        assert!(s3.path_style);
        assert_eq!(s3.secret_access_key.expose(), "hunter2-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    /// These settings stop start-up with a message naming `names` and never showing `hides`.
    fn start_up_stops(pairs: &[(&str, &str)], names: &str, hides: Option<&str>) {
        let err = Settings::from_vars(vars(pairs)).unwrap_err().to_string();
        assert!(err.contains(names), "{err}");
        if let Some(secret) = hides {
            assert!(!err.contains(secret), "{err}");
        }
    }

    cases! { start_up_stops {
        an_s3_store_without_credentials_stops_start_up:
            &[("CITYPIN_PHOTO_STORE", "s3://photos")], "ACCESS_KEY_ID", None;
        an_s3_bucket_name_that_is_not_dns_safe_stops_start_up_naming_it:
            &[("CITYPIN_PHOTO_STORE", "s3://Bad_Bucket")], "Bad_Bucket", None;
        an_s3_endpoint_with_a_password_stops_start_up_without_showing_it:
            &[
                ("CITYPIN_PHOTO_STORE", "s3://photos"),
                ("CITYPIN_S3_ENDPOINT", "http://admin:pa55word@minio:9000"),
            ],
            "CITYPIN_S3_ENDPOINT",
            Some("pa55word");
        a_misspelt_s3_setting_stops_start_up_naming_it:
            &[("CITYPIN_S3_BUKET", "x")], "CITYPIN_S3_BUKET", None;
        a_snapshot_interval_that_is_not_a_number_stops_start_up_naming_it:
            &[("CITYPIN_SNAPSHOT_INTERVAL_SECS", "hourly")], "CITYPIN_SNAPSHOT_INTERVAL_SECS", None;
        a_photo_orphan_grace_under_300_s_stops_start_up:
            &[("CITYPIN_PHOTO_ORPHAN_GRACE_SECS", "299")], "at least 300", None;
    }}

    #[test]
    fn snapshots_are_hourly_in_the_data_dir_unless_set() {
        let default = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(default.snapshot_interval, Duration::from_secs(3600));
        assert_eq!(default.snapshot_dir, None);
        let set = Settings::from_vars(vars(&[
            ("CITYPIN_SNAPSHOT_INTERVAL_SECS", "0"),
            ("CITYPIN_SNAPSHOT_DIR", "/srv/snapshots"),
        ]))
        .unwrap();
        assert!(set.snapshot_interval.is_zero());
        assert_eq!(set.snapshot_dir, Some(PathBuf::from("/srv/snapshots")));
    }

    #[test]
    fn the_photo_orphan_grace_is_an_hour_unless_set() {
        let default = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(default.photo_orphan_grace, Duration::from_secs(3600));
        let set = Settings::from_vars(vars(&[("CITYPIN_PHOTO_ORPHAN_GRACE_SECS", "300")])).unwrap();
        assert_eq!(set.photo_orphan_grace, Duration::from_secs(300));
    }

    #[test]
    fn an_s3_store_without_an_endpoint_is_aws_with_virtual_hosted_buckets() {
        let aws = Settings::from_vars(vars(&[
            ("CITYPIN_PHOTO_STORE", "s3"),
            ("CITYPIN_S3_BUCKET", "photos"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        let PhotoStoreSetting::S3(s3) = aws.photo_store else {
            panic!("expected an S3 store");
        };
        assert_eq!(s3.endpoint.as_str(), "https://s3.us-east-1.amazonaws.com/");
        assert!(!s3.path_style);
    }

    #[test]
    fn empty_database_url_means_embedded() {
        let s = Settings::from_vars(vars(&[
            ("DATABASE_URL", ""),
            ("CITYPIN_LISTEN", "127.0.0.1:9000"),
        ]))
        .unwrap();
        assert!(s.database_url.is_none());
        assert_eq!(s.public_url, "http://127.0.0.1:9000");
    }
}
