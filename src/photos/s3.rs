//! The S3-compatible photo store, for cities that run several replicas: the same
//! content-addressed layout as the local store, in a bucket. `rusty-s3` signs each request
//! (`SigV4`, presigned for a minute) and `reqwest` sends it.
//!
//! A presigned URL is a short-lived credential, so no URL ever reaches a log or an error message.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use rusty_s3::actions::{DeleteObject, GetObject, PutObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use super::storage::{ContentHash, PhotoStore};
use crate::config::S3Settings;

/// How long a signed request stays valid: it is sent at once, so only clock skew needs room.
const SIGNED_FOR: Duration = Duration::from_secs(60);
/// A store that does not answer in this time is treated as down (503), not waited on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    client: reqwest::Client,
}

/// Why the S3 photo store cannot be set up from its settings.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("CITYPIN_S3_ENDPOINT and bucket do not make a bucket URL: {0}")]
    BucketUrl(String),
    #[error("could not build the S3 client: {0}")]
    Client(reqwest::Error),
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Result<Self, S3SetupError> {
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            settings.endpoint.clone(),
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| S3SetupError::BucketUrl(format!("{e:?}")))?;
        let key = settings.access_key_id.clone();
        let secret = settings.secret_access_key.expose().to_owned();
        let credentials = match &settings.session_token {
            Some(token) => Credentials::new_with_token(key, secret, token.expose()),
            None => Credentials::new(key, secret),
        };
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| S3SetupError::Client(e.without_url()))?;
        Ok(Self {
            bucket,
            credentials,
            prefix: settings.prefix.clone(),
            client,
        })
    }

    /// The same fan-out as the local store: `PREFIX/ab/abcdef….jpg`.
    pub fn key(&self, hash: ContentHash) -> String {
        let hex = hash.hex();
        format!("{}{}/{hex}.jpg", self.prefix, &hex[..2])
    }

    async fn put_object(&self, hash: ContentHash, bytes: Bytes) -> io::Result<()> {
        let key = self.key(hash);
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), &key);
        action.headers_mut().insert("content-type", "image/jpeg");
        let url = action.sign(SIGNED_FOR);
        let res = self
            .client
            .put(url)
            .header(CONTENT_TYPE, "image/jpeg")
            .body(bytes)
            .send()
            .await
            .map_err(transport)?;
        expect_success(res).await.map(drop)
    }

    async fn get_object(&self, hash: ContentHash) -> io::Result<Option<Bytes>> {
        let key = self.key(hash);
        let url = GetObject::new(&self.bucket, Some(&self.credentials), &key).sign(SIGNED_FOR);
        let res = self.client.get(url).send().await.map_err(transport)?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = expect_success(res)
            .await?
            .bytes()
            .await
            .map_err(transport)?;
        // The name is the hash of the bytes: a corrupted or swapped object is never served.
        if ContentHash::of(&bytes) != hash {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the S3 object {key} does not match its content hash"),
            ));
        }
        Ok(Some(bytes))
    }

    async fn delete_object(&self, hash: ContentHash) -> io::Result<()> {
        let key = self.key(hash);
        let url = DeleteObject::new(&self.bucket, Some(&self.credentials), &key).sign(SIGNED_FOR);
        let res = self.client.delete(url).send().await.map_err(transport)?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_success(res).await.map(drop)
    }
}

impl PhotoStore for S3Store {
    /// Always a PUT, never "check, then put": several replicas writing the same photo write the
    /// same bytes under the same key, and the last write wins harmlessly.
    fn put(&self, bytes: Bytes) -> BoxFuture<'_, io::Result<ContentHash>> {
        Box::pin(async move {
            let hash = ContentHash::of(&bytes);
            self.put_object(hash, bytes).await.map(|()| hash)
        })
    }

    fn get(&self, hash: ContentHash) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        Box::pin(self.get_object(hash))
    }

    fn remove(&self, hash: ContentHash) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(self.delete_object(hash))
    }
}

/// A request that did not get an answer: the store is unreachable. The URL (a presigned
/// credential) is dropped from the error.
fn transport(e: reqwest::Error) -> io::Error {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connect() {
        io::ErrorKind::ConnectionRefused
    } else {
        io::ErrorKind::ConnectionAborted
    };
    io::Error::new(kind, format!("S3 request failed: {}", e.without_url()))
}

/// A 5xx (the store is overloaded or down) becomes an "unavailable" error; a 4xx (bad
/// credentials, missing bucket: a configuration fault) an ordinary one, with S3's error code.
async fn expect_success(res: reqwest::Response) -> io::Result<reqwest::Response> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = res.text().await.unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code);
    let kind = if status.is_server_error() {
        io::ErrorKind::ResourceBusy
    } else {
        io::ErrorKind::Other
    };
    Err(io::Error::new(kind, format!("S3 answered {status} {code}")))
}
