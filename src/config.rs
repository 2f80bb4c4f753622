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
        "external base URL used in links (default http://LISTEN)",
    ),
    (
        "CITYPIN_PHOTO_DIR",
        "where photo files are kept (default DATA_DIR/photos)",
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
    pub reconcile_every: Duration,
    /// Where photo files are kept; `None` means `data_dir/photos`.
    pub photo_dir: Option<PathBuf>,
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
            reconcile_every: Duration::from_secs(5),
            photo_dir: None,
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
        for (name, value) in vars {
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
                "CITYPIN_PUBLIC_URL" => public_url = Some(value.trim_end_matches('/').to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
