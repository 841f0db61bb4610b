//! Object stores (S3 now; GCS/Azure through the same crate) via `object_store`, driven by the
//! context's tokio runtime ([`IoRuntime`]).
//!
//! One [`ObjectStorage`] serves one array (`s3://bucket/prefix`). Its client — the HTTP connection
//! pool, the resolved credentials and the request limiter — is shared by every array of the same
//! bucket in the same context (it lives in the context's [`IoRuntime`]), so opening many arrays
//! reuses connections and asks the credential chain once.
//!
//! # Requests
//!
//! * [`Storage::list`]: one `ListObjectsV2` with delimiter `/` (pages followed).
//! * [`Storage::read`]: one GET. [`Storage::read_suffix`]: one GET with `Range: bytes=-n`.
//! * [`Storage::read_ranges`]: ranges at most [`COALESCE_GAP`] apart are merged, merged ranges
//!   longer than [`SPLIT_SIZE`] are cut into parts, and all requests run concurrently.
//!
//! At most `S3Config.max_parallel_ops` requests of a client are in flight at once, whoever sends
//! them (many threads, many arrays of one bucket). The first failing request fails the call and
//! cancels the others. `object_store` retries 5xx, timeouts and dropped connections with
//! exponential backoff.
//!
//! # Configuration ([`S3Config`] → `object_store`), meant to behave like libtiledb's `vfs.s3.*`
//!
//! | `S3Config` | `object_store` |
//! |---|---|
//! | `region` | region (always; `AWS_REGION`/`AWS_DEFAULT_REGION` are not read, as TileDB sets `vfs.s3.region`) |
//! | `endpoint` (`host[:port]`, optional scheme) | endpoint `scheme://host[:port]`; with virtual addressing `scheme://bucket.host[:port]`. Without an endpoint: AWS (`https://s3.<region>.amazonaws.com`, or the `http` URL when `scheme = "http"`) |
//! | `scheme` (else the endpoint's, else https) | `allow_http` when `http` |
//! | `use_virtual_addressing` | `virtual_hosted_style_request` |
//! | `include_credentials = false` | `skip_signature` (anonymous requests) |
//! | `verify_ssl = false` | `allow_invalid_certificates` |
//! | `request_timeout_ms` | client request timeout (whole request; default 30 s) |
//! | `connect_max_tries` | `RetryConfig.max_retries` (default 5, TileDB's default); backoff as `object_store` |
//! | `max_parallel_ops` | requests in flight per client (a semaphore) |
//!
//! Credentials come from the AWS chain as far as `object_store` implements it: environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), ECS/EKS container credentials, then EC2
//! instance metadata. Static keys of a shared profile (`AWS_PROFILE`, default `default`, in
//! `AWS_SHARED_CREDENTIALS_FILE` / `~/.aws/credentials` or `AWS_CONFIG_FILE` / `~/.aws/config`) are
//! used when the environment has none; SSO and `credential_process` profiles are not supported.
//! With nothing found and `AWS_EC2_METADATA_DISABLED=true`, requests go unsigned (as the AWS SDK
//! does with empty credentials). Only the `object_store` builder holds the keys.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig};
use tokio::sync::Semaphore;

use crate::config::S3Config;
use crate::io::{IoCounters, IoError, Storage, coalesce};
use crate::runtime::IoRuntime;

/// Ranges at most this many bytes apart are fetched with one request (the bytes between them are
/// read and dropped): on S3 a request costs about as much as ~256 KiB of transfer.
pub const COALESCE_GAP: u64 = 256 * 1024;

/// Merged ranges longer than this are fetched as several concurrent requests of at most this size
/// (one S3 stream tops out at ~50–100 MB/s).
pub const SPLIT_SIZE: u64 = 8 * 1024 * 1024;

/// Retries when `S3Config.connect_max_tries` is unset (TileDB's `vfs.s3.connect_max_tries`).
const DEFAULT_MAX_RETRIES: usize = 5;

/// Object-store services this module reads. Each has its own URI scheme and client builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    /// Amazon S3 and S3-compatible servers (`s3://bucket/prefix`).
    S3,
    // Gcs (`gs://`) and Azure (`az://`) would map here, with their builders in `build_client`.
}

impl Service {
    /// The service of `uri` and its `(bucket, prefix)`.
    fn parse(uri: &str) -> Option<(Service, &str, &str)> {
        let (service, rest) = if let Some(rest) = uri.strip_prefix("s3://") {
            (Service::S3, rest)
        } else {
            return None;
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some((service, bucket, prefix.trim_matches('/')))
    }

    fn scheme(self) -> &'static str {
        match self {
            Service::S3 => "s3",
        }
    }
}

/// A client of one bucket: shared by the arrays of that bucket in one context.
struct Client {
    store: Arc<dyn ObjectStore>,
    /// Requests in flight (`max_parallel_ops` permits).
    limiter: Semaphore,
    /// The most requests one call keeps in flight.
    parallel: usize,
}

/// The arrays of an object store (see the module docs).
pub struct ObjectStorage {
    /// `s3://bucket/prefix`, for messages.
    uri: String,
    /// The array's prefix in the bucket.
    root: Path,
    client: Arc<Client>,
    runtime: Arc<IoRuntime>,
    counters: Arc<IoCounters>,
    coalesce_gap: u64,
    split_size: u64,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("uri", &self.uri)
            .field("max_parallel_ops", &self.client.parallel)
            .field("coalesce_gap", &self.coalesce_gap)
            .field("split_size", &self.split_size)
            .finish_non_exhaustive()
    }
}

/// The endpoint URL and whether it is plain http, as libtiledb would reach it.
fn s3_endpoint(bucket: &str, s3: &S3Config) -> (Option<String>, bool) {
    let (ep_scheme, host) = match s3.endpoint.as_deref().map(str::trim) {
        Some(e) => match e.split_once("://") {
            Some((s, rest)) => (Some(s), Some(rest.trim_end_matches('/'))),
            None => (None, Some(e.trim_end_matches('/'))),
        },
        None => (None, None),
    };
    let scheme = s3.scheme.as_deref().or(ep_scheme).unwrap_or("https");
    let http = scheme == "http";
    let url = match host {
        Some(host) if s3.use_virtual_addressing => Some(format!("{scheme}://{bucket}.{host}")),
        Some(host) => Some(format!("{scheme}://{host}")),
        // object_store's own AWS URLs are https; build the http one libtiledb would use.
        None if http && s3.use_virtual_addressing => Some(format!("http://{bucket}.s3.{}.amazonaws.com", s3.region)),
        None if http => Some(format!("http://s3.{}.amazonaws.com", s3.region)),
        None => None,
    };
    (url, http)
}

/// Credential-related `AWS_*` environment variables passed to the builder (region, endpoint and
/// client settings come from [`S3Config`] only).
const CREDENTIAL_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    ("AWS_SESSION_TOKEN", "aws_session_token"),
    ("AWS_ROLE_SESSION_NAME", "aws_role_session_name"),
    ("AWS_ENDPOINT_URL_STS", "aws_endpoint_url_sts"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "aws_container_credentials_relative_uri"),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "aws_container_credentials_full_uri"),
    ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "aws_container_authorization_token_file"),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "aws_metadata_endpoint"),
];

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Static keys of the shared profile: `(access key id, secret, session token)`.
fn profile_keys() -> Option<(String, String, Option<String>)> {
    profile_keys_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// [`profile_keys`] with the environment read through `env`.
fn profile_keys_from(env: impl Fn(&str) -> Option<String>) -> Option<(String, String, Option<String>)> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var).map(std::path::PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let sources = [
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), profile.clone()),
        (
            file("AWS_CONFIG_FILE", "config"),
            if profile == "default" { profile.clone() } else { format!("profile {profile}") },
        ),
    ];
    for (path, section) in sources {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else { continue };
        let (mut id, mut secret, mut token) = (None, None, None);
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
            } else if inside && let Some((k, v)) = line.split_once('=') {
                let v = v.trim().to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "aws_access_key_id" => id = Some(v),
                    "aws_secret_access_key" => secret = Some(v),
                    "aws_session_token" => token = Some(v),
                    _ => {}
                }
            }
        }
        if let (Some(id), Some(secret)) = (id, secret) {
            return Some((id, secret, token));
        }
    }
    None
}

fn s3_builder(bucket: &str, s3: &S3Config) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::new().with_bucket_name(bucket).with_region(&s3.region);
    let mut sign = s3.include_credentials;
    if sign {
        for (var, key) in CREDENTIAL_ENV {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
                && let Ok(key) = key.parse::<AmazonS3ConfigKey>()
            {
                b = b.with_config(key, v);
            }
        }
        let web_identity = env_set("AWS_WEB_IDENTITY_TOKEN_FILE") && env_set("AWS_ROLE_ARN");
        let container =
            env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        if !env_set("AWS_ACCESS_KEY_ID") && !web_identity && !container {
            if let Some((id, secret, token)) = profile_keys() {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = token {
                    b = b.with_token(t);
                }
            } else if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
                sign = false;
            }
        }
    }
    let (endpoint, http) = s3_endpoint(bucket, s3);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e);
    }
    let mut options = ClientOptions::new().with_allow_http(http).with_allow_invalid_certificates(!s3.verify_ssl);
    if let Some(ms) = s3.request_timeout_ms {
        options = options.with_timeout(Duration::from_millis(ms.max(1)));
    }
    let retry = RetryConfig {
        max_retries: s3.connect_max_tries.map_or(DEFAULT_MAX_RETRIES, |n| n as usize),
        ..RetryConfig::default()
    };
    b.with_virtual_hosted_style_request(s3.use_virtual_addressing)
        .with_skip_signature(!sign)
        .with_client_options(options)
        .with_retry(retry)
}

fn build_client(service: Service, bucket: &str, s3: &S3Config) -> Result<Client, IoError> {
    let store: Arc<dyn ObjectStore> = match service {
        Service::S3 => Arc::new(
            s3_builder(bucket, s3)
                .build()
                .map_err(|e| IoError::Other(format!("s3://{bucket}: cannot configure the S3 client: {e}")))?,
        ),
    };
    let parallel = s3.max_parallel_ops.max(1) as usize;
    Ok(Client { store, limiter: Semaphore::new(parallel), parallel })
}

/// A successful bounded GET: the bytes and the object's size.
struct Fetched {
    bytes: Bytes,
    size: u64,
}

impl ObjectStorage {
    /// Whether `uri` names an object store this module reads (`s3://bucket/...`).
    pub fn supports(uri: &str) -> bool {
        Service::parse(uri).is_some()
    }

    /// Storage of the array at `uri` (`s3://bucket/prefix`), reached as `s3` says, with requests
    /// run on `runtime` and counted in `counters`. Sends nothing: the client (and credentials) are
    /// resolved here or reused from an earlier array of the same bucket in `runtime`.
    pub fn new(
        uri: &str,
        s3: &S3Config,
        runtime: Arc<IoRuntime>,
        counters: Arc<IoCounters>,
    ) -> Result<ObjectStorage, IoError> {
        let (service, bucket, prefix) =
            Service::parse(uri).ok_or_else(|| IoError::Other(format!("not an object-store URI: {uri}")))?;
        let root = Path::parse(prefix).map_err(|e| IoError::Other(format!("{uri}: {e}")))?;
        // One client per (service, bucket, settings) and context. S3Config holds no secrets.
        let key = format!("object_store/{}/{bucket}/{s3:?}", service.scheme());
        let client = runtime.shared(&key, || build_client(service, bucket, s3))?;
        let uri = if prefix.is_empty() {
            format!("{}://{bucket}", service.scheme())
        } else {
            format!("{}://{bucket}/{prefix}", service.scheme())
        };
        Ok(ObjectStorage { uri, root, client, runtime, counters, coalesce_gap: COALESCE_GAP, split_size: SPLIT_SIZE })
    }

    /// Sets how far apart ranges may lie and still be fetched together (default [`COALESCE_GAP`]).
    pub fn with_coalesce_gap(mut self, gap: u64) -> ObjectStorage {
        self.coalesce_gap = gap;
        self
    }

    /// Sets the longest single range request (default [`SPLIT_SIZE`]; at least 1).
    pub fn with_split_size(mut self, size: u64) -> ObjectStorage {
        self.split_size = size.max(1);
        self
    }

    /// The array's URI (`s3://bucket/prefix`).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The most requests in flight at once (`S3Config.max_parallel_ops`).
    pub fn max_parallel_ops(&self) -> usize {
        self.client.parallel
    }

    fn full(&self, rel: &str) -> String {
        if rel.is_empty() { self.uri.clone() } else { format!("{}/{}", self.uri, rel.trim_start_matches('/')) }
    }

    fn location(&self, rel: &str) -> Result<Path, IoError> {
        let rel = rel.trim_matches('/');
        let joined = match (self.root.as_ref(), rel) {
            ("", r) => r.to_owned(),
            (root, "") => root.to_owned(),
            (root, r) => format!("{root}/{r}"),
        };
        Path::parse(&joined).map_err(|e| IoError::Other(format!("{}: {e}", self.full(rel))))
    }

    fn err(&self, rel: &str, e: object_store::Error) -> IoError {
        match e {
            object_store::Error::NotFound { .. } => IoError::NotFound(self.full(rel)),
            e => IoError::Other(format!("{}: {e}", self.full(rel))),
        }
    }

    fn block_on<T>(&self, f: impl Future<Output = Result<T, IoError>>) -> Result<T, IoError> {
        self.runtime.try_block_on(f)?
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.client.limiter.acquire().await.expect("request limiter closed")
    }

    /// The object's size (one HEAD).
    async fn size(&self, rel: &str, loc: &Path) -> Result<u64, IoError> {
        let _permit = self.permit().await;
        let _g = self.counters.start();
        Ok(self.client.store.head(loc).await.map_err(|e| self.err(rel, e))?.size)
    }

    /// One GET of `range`, which must come back in full.
    async fn get_bounded(&self, rel: &str, loc: &Path, range: Range<u64>) -> Result<Fetched, IoError> {
        let res = {
            let _permit = self.permit().await;
            let mut g = self.counters.start();
            let opts = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..Default::default() };
            match self.client.store.get_opts(loc, opts).await {
                Ok(r) => {
                    let size = r.meta.size;
                    r.bytes().await.map(|bytes| {
                        g.bytes = bytes.len() as u64;
                        Fetched { bytes, size }
                    })
                }
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(f) if f.bytes.len() as u64 == range.end - range.start => Ok(f),
            Ok(f) => Err(IoError::Short { path: self.full(rel), start: range.start, end: range.end, size: f.size }),
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.err(rel, e)),
            // S3 answers 416 to a range starting at or past the end: say how short the object is.
            Err(e) => match self.size(rel, loc).await {
                Ok(size) if size < range.end => {
                    Err(IoError::Short { path: self.full(rel), start: range.start, end: range.end, size })
                }
                _ => Err(self.err(rel, e)),
            },
        }
    }
}

/// `ranges` with every range longer than `max` cut into equal parts of at most `max` bytes.
fn split(ranges: Vec<Range<u64>>, max: u64) -> Vec<Range<u64>> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let len = r.end - r.start;
        let n = len.div_ceil(max).max(1);
        let step = len.div_ceil(n);
        let mut s = r.start;
        while s < r.end {
            out.push(s..(s + step).min(r.end));
            s += step;
        }
    }
    out
}

impl Storage for ObjectStorage {
    fn list(&self, dir: &str) -> Result<Vec<String>, IoError> {
        let loc = self.location(dir)?;
        self.block_on(async {
            let res = {
                let _permit = self.permit().await;
                self.counters.list_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let prefix = (!loc.as_ref().is_empty()).then_some(&loc);
                self.client.store.list_with_delimiter(prefix).await.map_err(|e| self.err(dir, e))?
            };
            let mut names: Vec<String> = res
                .objects
                .iter()
                .map(|m| &m.location)
                .chain(res.common_prefixes.iter())
                .filter_map(|p| p.filename())
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, IoError> {
        let loc = self.location(path)?;
        self.block_on(async {
            let _permit = self.permit().await;
            let mut g = self.counters.start();
            let r = self.client.store.get(&loc).await.map_err(|e| self.err(path, e))?;
            let b = r.bytes().await.map_err(|e| self.err(path, e))?;
            g.bytes = b.len() as u64;
            Ok(Vec::from(b))
        })
    }

    fn read_suffix(&self, path: &str, n: u64) -> Result<(Vec<u8>, u64), IoError> {
        let loc = self.location(path)?;
        self.block_on(async {
            if n == 0 {
                return Ok((Vec::new(), self.size(path, &loc).await?));
            }
            let res = {
                let _permit = self.permit().await;
                let mut g = self.counters.start();
                let opts = GetOptions { range: Some(GetRange::Suffix(n)), ..Default::default() };
                match self.client.store.get_opts(&loc, opts).await {
                    Ok(r) => {
                        let size = r.meta.size;
                        r.bytes().await.map(|b| {
                            g.bytes = b.len() as u64;
                            (b, size)
                        })
                    }
                    Err(e) => Err(e),
                }
            };
            match res {
                Ok((b, size)) if b.len() as u64 == n.min(size) => Ok((Vec::from(b), size)),
                Ok((_, size)) => {
                    Err(IoError::Short { path: self.full(path), start: size.saturating_sub(n), end: size, size })
                }
                Err(e @ object_store::Error::NotFound { .. }) => Err(self.err(path, e)),
                // Servers answer a suffix of an empty object with 416, and some answer a suffix
                // longer than the object with the whole object (200): fall back on its size.
                Err(e) => match self.size(path, &loc).await? {
                    0 => Ok((Vec::new(), 0)),
                    size if size <= n => {
                        let _permit = self.permit().await;
                        let mut g = self.counters.start();
                        let r = self.client.store.get(&loc).await.map_err(|e| self.err(path, e))?;
                        let b = r.bytes().await.map_err(|e| self.err(path, e))?;
                        g.bytes = b.len() as u64;
                        Ok((Vec::from(b), size))
                    }
                    _ => Err(self.err(path, e)),
                },
            }
        })
    }

    fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, IoError> {
        let loc = self.location(path)?;
        let payload = object_store::PutPayload::from(Bytes::copy_from_slice(data));
        let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        self.block_on(async {
            let _permit = self.permit().await;
            match self.client.store.put_opts(&loc, payload, opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(object_store::Error::NotImplemented) => Err(IoError::Other(format!(
                    "{}: this object store does not support conditional writes (If-None-Match), which the \
                     dataset write lock needs",
                    self.full(path)
                ))),
                Err(e) => Err(self.err(path, e)),
            }
        })
    }

    fn delete(&self, path: &str) -> Result<(), IoError> {
        let loc = self.location(path)?;
        self.block_on(async {
            let _permit = self.permit().await;
            match self.client.store.delete(&loc).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.err(path, e)),
            }
        })
    }

    fn read_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>, IoError> {
        if let Some(r) = ranges.iter().find(|r| r.start > r.end) {
            return Err(IoError::Other(format!("{}: invalid byte range {}..{}", self.full(path), r.start, r.end)));
        }
        let wanted: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
        if wanted.is_empty() {
            return Ok(vec![Vec::new(); ranges.len()]);
        }
        let loc = self.location(path)?;
        let (merged, _) = coalesce(&wanted, self.coalesce_gap);
        let units = split(merged, self.split_size);
        let fetched = self.block_on(async {
            let mut got: Vec<(usize, Fetched)> = futures::stream::iter(units.iter().cloned().enumerate())
                .map(|(i, r)| {
                    let loc = &loc;
                    async move { self.get_bounded(path, loc, r).await.map(|f| (i, f)) }
                })
                .buffer_unordered(self.client.parallel)
                .try_collect()
                .await?;
            got.sort_unstable_by_key(|(i, _)| *i);
            Ok(got.into_iter().map(|(_, f)| f.bytes).collect::<Vec<Bytes>>())
        });
        let mut parts = match fetched {
            Ok(p) => p,
            // Name the first requested range past the end, not the merged request.
            Err(IoError::Short { path, start, end, size }) => {
                let r = ranges.iter().find(|r| r.end > size).cloned().unwrap_or(start..end);
                return Err(IoError::Short { path, start: r.start, end: r.end, size });
            }
            Err(e) => return Err(e),
        };
        // How many requested ranges use each unit: a unit used by exactly one range equal to it is
        // handed over without a copy.
        let first_unit = |r: &Range<u64>| units.partition_point(|u| u.end <= r.start);
        let mut users = vec![0u32; units.len()];
        for r in &wanted {
            let mut k = first_unit(r);
            while k < units.len() && units[k].start < r.end {
                users[k] += 1;
                k += 1;
            }
        }
        let out = ranges
            .iter()
            .map(|r| {
                if r.end <= r.start {
                    return Vec::new();
                }
                let k = first_unit(r);
                if units[k] == *r && users[k] == 1 {
                    return Vec::from(std::mem::take(&mut parts[k]));
                }
                let mut buf = Vec::with_capacity((r.end - r.start) as usize);
                let mut k = k;
                while buf.len() < (r.end - r.start) as usize {
                    let (u, b) = (&units[k], &parts[k]);
                    let from = r.start.max(u.start) - u.start;
                    let to = r.end.min(u.end) - u.start;
                    buf.extend_from_slice(&b[from as usize..to as usize]);
                    k += 1;
                }
                buf
            })
            .collect();
        Ok(out)
    }

    fn is_local(&self) -> bool {
        false
    }
}

#[cfg(test)]
// Single-range lists and an inverted range are what these tests ask for.
#[allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;

    use object_store::PutPayload;

    use super::*;

    const BUCKET: &str = "radiobject-rs-test";

    /// The moto endpoint of scripts/test.sh (which also sets `AWS_ACCESS_KEY_ID` etc.: moto lets
    /// unsigned clients read only public objects), or None (a note; a panic under CI).
    fn endpoint() -> Option<String> {
        match std::env::var("RADIOBJECT_TEST_S3_ENDPOINT") {
            Ok(e) if !e.is_empty() && env_set("AWS_ACCESS_KEY_ID") => Some(e),
            _ if std::env::var_os("CI").is_some() => {
                panic!("RADIOBJECT_TEST_S3_ENDPOINT / AWS_ACCESS_KEY_ID are not set under CI: run scripts/test.sh")
            }
            _ => {
                eprintln!(
                    "note: RADIOBJECT_TEST_S3_ENDPOINT or AWS_ACCESS_KEY_ID is not set; skipping the object-store test"
                );
                None
            }
        }
    }

    /// `PUT /bucket` without signature (moto accepts it); 200 or 409 (exists) are fine.
    fn create_bucket(endpoint: &str, bucket: &str) {
        let host = endpoint.split_once("://").map_or(endpoint, |(_, h)| h).trim_end_matches('/');
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split_whitespace().nth(1).unwrap_or("");
        assert!(status == "200" || status == "409", "create bucket: {resp}");
    }

    fn config(endpoint: &str, max_parallel_ops: u32) -> S3Config {
        S3Config {
            endpoint: Some(endpoint.to_owned()),
            use_virtual_addressing: false,
            max_parallel_ops,
            ..S3Config::default()
        }
    }

    /// A fresh array prefix with `files` in it, and storage of it.
    fn setup(name: &str, max_parallel_ops: u32, files: &[(&str, Vec<u8>)]) -> Option<(ObjectStorage, Arc<IoCounters>)> {
        let ep = endpoint()?;
        create_bucket(&ep, BUCKET);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let uri = format!("s3://{BUCKET}/{name}-{}-{nanos}/arr", std::process::id());
        let counters = Arc::new(IoCounters::default());
        let s = ObjectStorage::new(&uri, &config(&ep, max_parallel_ops), Arc::new(IoRuntime::new()), counters.clone())
            .unwrap();
        for (rel, data) in files {
            let loc = s.location(rel).unwrap();
            let payload = PutPayload::from(Bytes::from(data.clone()));
            s.runtime.block_on(s.client.store.put(&loc, payload)).unwrap();
        }
        Some((s, counters))
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn reset(c: &IoCounters) {
        for a in [&c.list_requests, &c.range_requests, &c.bytes_fetched, &c.in_flight, &c.max_in_flight] {
            a.store(0, Ordering::Relaxed);
        }
    }

    #[test]
    fn parses_uris_and_maps_the_endpoint_like_libtiledb() {
        assert!(ObjectStorage::supports("s3://b/p/q"));
        assert!(ObjectStorage::supports("s3://b"));
        assert!(!ObjectStorage::supports("s3:///p"));
        assert!(!ObjectStorage::supports("/tmp/x") && !ObjectStorage::supports("file:///tmp/x"));
        assert_eq!(Service::parse("s3://b/p/q/"), Some((Service::S3, "b", "p/q")));
        let mut c = S3Config { endpoint: Some("http://127.0.0.1:9000/".into()), ..S3Config::default() };
        c.use_virtual_addressing = false;
        assert_eq!(s3_endpoint("bk", &c), (Some("http://127.0.0.1:9000".into()), true));
        c.use_virtual_addressing = true;
        assert_eq!(s3_endpoint("bk", &c), (Some("http://bk.127.0.0.1:9000".into()), true));
        c.endpoint = Some("minio.local:9000".into());
        c.scheme = Some("https".into());
        assert_eq!(s3_endpoint("bk", &c), (Some("https://bk.minio.local:9000".into()), false));
        let aws = S3Config { region: "eu-west-1".into(), ..S3Config::default() };
        assert_eq!(s3_endpoint("bk", &aws), (None, false));
        let aws_http = S3Config { scheme: Some("http".into()), use_virtual_addressing: false, ..aws };
        assert_eq!(s3_endpoint("bk", &aws_http), (Some("http://s3.eu-west-1.amazonaws.com".into()), true));
        assert_eq!(split(vec![0..10, 20..21], 4), vec![0..4, 4..8, 8..10, 20..21]);
        assert_eq!(split(vec![0..9], 3), vec![0..3, 3..6, 6..9]);
    }

    #[test]
    fn reads_static_keys_of_the_shared_profile() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(
            d.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKD\naws_secret_access_key = sd\n\n[dev]\n# c\naws_access_key_id=AKDEV\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join(".aws/config"),
            "[profile dev]\naws_secret_access_key = sdev\n[profile ci]\naws_access_key_id = AKCI\n\
             aws_secret_access_key = sci\naws_session_token = tci\n",
        )
        .unwrap();
        let home = d.path().to_str().unwrap().to_owned();
        let env = |profile: Option<&'static str>| {
            let home = home.clone();
            move |k: &str| match k {
                "HOME" => Some(home.clone()),
                "AWS_PROFILE" => profile.map(str::to_owned),
                _ => None,
            }
        };
        assert_eq!(profile_keys_from(env(None)), Some(("AKD".into(), "sd".into(), None)));
        assert_eq!(profile_keys_from(env(Some("ci"))), Some(("AKCI".into(), "sci".into(), Some("tci".into()))));
        // A profile split over both files is not merged: neither file has both keys.
        assert_eq!(profile_keys_from(env(Some("dev"))), None);
        assert_eq!(profile_keys_from(env(Some("nope"))), None);
    }

    #[test]
    fn lists_reads_and_suffixes() {
        let f = data(10_000);
        let Some((s, c)) = setup(
            "basic",
            4,
            &[
                ("__commits/b.wrt", vec![]),
                ("__commits/a.wrt", vec![1]),
                ("__fragments/f1/a0.tdb", f.clone()),
                ("__schema/s", vec![2; 3]),
            ],
        ) else {
            return;
        };
        assert_eq!(s.list("__commits").unwrap(), vec!["a.wrt", "b.wrt"]);
        assert_eq!(s.list("").unwrap(), vec!["__commits", "__fragments", "__schema"]);
        assert_eq!(s.list("__fragments/").unwrap(), vec!["f1"]);
        assert!(s.list("missing").unwrap().is_empty());
        assert_eq!(c.list_requests.load(Ordering::Relaxed), 4);
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 0);

        assert_eq!(s.read("__fragments/f1/a0.tdb").unwrap(), f);
        assert_eq!(s.read("__commits/b.wrt").unwrap(), Vec::<u8>::new());
        assert_eq!(s.read_suffix("__fragments/f1/a0.tdb", 100).unwrap(), (f[9_900..].to_vec(), 10_000));
        assert_eq!(s.read_suffix("__fragments/f1/a0.tdb", 50_000).unwrap(), (f.clone(), 10_000));
        assert_eq!(s.read_suffix("__schema/s", 0).unwrap(), (vec![], 3));
        assert_eq!(s.read_suffix("__commits/b.wrt", 10).unwrap(), (vec![], 0));
        assert!(matches!(s.read("nope"), Err(IoError::NotFound(p)) if p.ends_with("/arr/nope")));
        assert!(matches!(s.read_suffix("nope", 4), Err(IoError::NotFound(_))));
        assert!(matches!(s.read_ranges("nope", &[0..4]), Err(IoError::NotFound(_))));
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
        assert!(c.bytes_fetched.load(Ordering::Relaxed) >= 20_100);
        assert!(!s.is_local());
    }

    #[test]
    fn ranges_coalesce_split_and_come_back_in_order() {
        let f = data(3_000_000);
        let Some((s, c)) = setup("ranges", 4, &[("obj", f.clone())]) else { return };
        let s = s.with_coalesce_gap(1000).with_split_size(1_000_000);
        let slice = |r: &Range<u64>| f[r.start as usize..r.end as usize].to_vec();

        // Out of order; 0..10 / 500..600 / 1500..1600 merge into one request, 100_000.. is alone.
        let want = [100_000..100_010, 1500..1600, 0..10, 500..600, 5..7, 42..42];
        let got = s.read_ranges("obj", &want).unwrap();
        assert_eq!(got, want.iter().map(slice).collect::<Vec<_>>());
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 2);
        assert_eq!(c.bytes_fetched.load(Ordering::Relaxed), 1600 + 10);

        // Not coalesced: far apart.
        reset(&c);
        let want: Vec<Range<u64>> = (0..6).rev().map(|i| i * 400_000..i * 400_000 + 1234).collect();
        assert_eq!(s.read_ranges("obj", &want).unwrap(), want.iter().map(slice).collect::<Vec<_>>());
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 6);
        assert_eq!(c.bytes_fetched.load(Ordering::Relaxed), 6 * 1234);

        // One long range split in three and reassembled; a range straddling two parts.
        reset(&c);
        let want = [0..3_000_000, 999_990..1_000_020];
        assert_eq!(s.read_ranges("obj", &want).unwrap(), want.iter().map(slice).collect::<Vec<_>>());
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 3);
        assert_eq!(c.bytes_fetched.load(Ordering::Relaxed), 3_000_000);
        assert!(s.read_ranges("obj", &[]).unwrap().is_empty());
    }

    #[test]
    fn short_ranges_fail_with_the_object_size() {
        let Some((s, c)) = setup("short", 4, &[("obj", data(1000))]) else { return };
        // Ending past the end (S3 returns what there is) and starting past it (416).
        for want in [vec![10..20, 990..1010], vec![2000..2010], vec![0..4, 1000..1001]] {
            match s.read_ranges("obj", &want) {
                Err(IoError::Short { size: 1000, start, end, .. }) => {
                    assert!(want.contains(&(start..end)) && end > 1000, "{start}..{end}")
                }
                other => panic!("{want:?}: {other:?}"),
            }
        }
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
        assert!(matches!(s.read_ranges("obj", &[5..4]), Err(IoError::Other(_))));
    }

    #[test]
    fn requests_in_flight_respect_max_parallel_ops_across_callers() {
        let f = data(2_000_000);
        let Some((s, c)) = setup("parallel", 3, &[("obj", f.clone())]) else { return };
        let s = s.with_coalesce_gap(0);
        // 40 separate ranges: three in flight at once, never more.
        let want: Vec<Range<u64>> = (0..40).map(|i| i * 50_000..i * 50_000 + 20_000).collect();
        let got = s.read_ranges("obj", &want).unwrap();
        assert!(got.iter().zip(&want).all(|(g, r)| g[..] == f[r.start as usize..r.end as usize]));
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 40);
        assert_eq!(c.bytes_fetched.load(Ordering::Relaxed), 40 * 20_000);
        assert_eq!(c.max_in_flight.load(Ordering::Relaxed), 3);

        // A second array of the same bucket in the same runtime shares the client and its limit.
        reset(&c);
        let other = ObjectStorage::new(s.uri(), &config(&endpoint().unwrap(), 3), s.runtime.clone(), c.clone())
            .unwrap()
            .with_coalesce_gap(0);
        assert!(Arc::ptr_eq(&s.client, &other.client));
        std::thread::scope(|sc| {
            for st in [&s, &other, &s, &other] {
                let want = &want;
                sc.spawn(move || st.read_ranges("obj", want).unwrap());
            }
        });
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 160);
        assert!(c.max_in_flight.load(Ordering::Relaxed) <= 3);
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
    }

    /// Timings through tests/s3_delay_proxy.py (not run by default):
    /// `RADIOBJECT_TEST_S3_SLOW_ENDPOINT=http://127.0.0.1:<proxy port> RADIOBJECT_TEST_S3_DELAY_MS=50
    /// cargo test -p radiobject-core --lib -- --ignored --nocapture waves_through_a_delay_proxy`.
    #[test]
    #[ignore = "needs tests/s3_delay_proxy.py in front of the S3 server"]
    fn waves_through_a_delay_proxy() {
        let (Ok(slow), Some(_)) = (std::env::var("RADIOBJECT_TEST_S3_SLOW_ENDPOINT"), endpoint()) else {
            eprintln!("note: RADIOBJECT_TEST_S3_SLOW_ENDPOINT is not set");
            return;
        };
        let delay: f64 = std::env::var("RADIOBJECT_TEST_S3_DELAY_MS").map_or(50.0, |d| d.parse().unwrap());
        let f = data(4_000_000);
        let Some((direct, _)) = setup("waves", 8, &[("obj", f.clone())]) else { return };
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
        for parallel in [8u32, 1] {
            let c = Arc::new(IoCounters::default());
            let s = ObjectStorage::new(direct.uri(), &config(&slow, parallel), Arc::new(IoRuntime::new()), c.clone())
                .unwrap()
                .with_coalesce_gap(0);
            let t = std::time::Instant::now();
            s.list("").unwrap();
            let first = ms(t);
            let t = std::time::Instant::now();
            s.list("").unwrap();
            let list = ms(t);
            let t = std::time::Instant::now();
            s.read_suffix("obj", 4096).unwrap();
            let suffix = ms(t);
            let mut line = format!(
                "max_parallel_ops={parallel} delay={delay}ms: first list {first:.1} ms, list {list:.1} ms, suffix {suffix:.1} ms"
            );
            for n in [1u64, 8, 16, 32] {
                let want: Vec<Range<u64>> = (0..n).map(|i| i * 100_000..i * 100_000 + 50_000).collect();
                let t = std::time::Instant::now();
                let got = s.read_ranges("obj", &want).unwrap();
                let el = ms(t);
                assert_eq!(got.len(), n as usize);
                line += &format!(", {n} ranges {el:.1} ms ({:.2} delays)", el / delay);
            }
            let t = std::time::Instant::now();
            s.read_ranges("obj", &[0..4_000_000]).unwrap();
            line += &format!(", 4 MB in one range {:.1} ms", ms(t));
            eprintln!("{line}");
            assert!(c.max_in_flight.load(Ordering::Relaxed) <= parallel as u64);
        }
    }
}
