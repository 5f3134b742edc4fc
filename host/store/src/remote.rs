//! The S3-compatible backend of the object store, through the
//! `object_store` crate: `s3://bucket/prefix` with the usual AWS
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, and `AWS_ENDPOINT_URL` plus `AWS_ALLOW_HTTP=true` for a
//! local S3-compatible server).
//!
//! The rest of sluice uses the store synchronously; this backend runs the
//! requests on a small runtime of its own and waits for them over a channel,
//! so it can be called from any thread, inside an async runtime or not.

use crate::{Digest, StoreError};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use std::sync::Arc;

/// An object store bucket (and prefix) reached over the S3 protocol.
pub(crate) struct Remote {
    url: String,
    prefix: ObjectPath,
    store: Arc<dyn object_store::ObjectStore>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // The store may be dropped on an async runtime's thread, where a
        // blocking shutdown is not allowed.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A listed object: its digest, size and age.
pub(crate) struct Listed {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) modified: std::time::SystemTime,
}

impl Remote {
    /// Connects to `s3://bucket[/prefix]` (nothing is sent until first use).
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: String| StoreError::Remote {
            url: url.to_string(),
            detail: why,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("only s3:// URLs are supported".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(
                "the URL names no bucket: use s3://BUCKET/PREFIX".into(),
            ));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        // A plain-HTTP endpoint (MinIO or moto on a private network) never
        // speaks TLS: do not read the system's CA certificates (about 6 ms
        // of every process's start, for nothing).
        use object_store::aws::AmazonS3ConfigKey;
        if builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
        {
            builder = builder.with_config(
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::NoSystemCertificates),
                "true",
            );
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-s3")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("starting the I/O runtime: {e}")))?;
        Ok(Remote {
            url: url.trim_end_matches('/').to_string(),
            prefix: ObjectPath::from(prefix.trim_matches('/')),
            store: Arc::new(store),
            runtime: Some(runtime),
        })
    }

    /// The URL of the store, e.g. `s3://bucket/prefix`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, digest: &Digest) -> ObjectPath {
        let hex = digest.to_hex();
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend([
            "objects".into(),
            "sha256".into(),
            hex[..2].to_string(),
            hex[2..].to_string(),
        ]);
        ObjectPath::from_iter(parts)
    }

    /// Where an object lives, as a URL.
    pub(crate) fn location(&self, digest: &Digest) -> String {
        let hex = digest.to_hex();
        format!("{}/objects/sha256/{}/{}", self.url, &hex[..2], &hex[2..])
    }

    /// Runs `fut` on the backend's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .expect("the S3 runtime runs every request to completion")
    }

    fn error(&self, action: &str, e: object_store::Error) -> StoreError {
        StoreError::Remote {
            url: self.url.clone(),
            detail: format!("{action}: {e}"),
        }
    }

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.size_of(digest).is_some()
    }

    pub(crate) fn size_of(&self, digest: &Digest) -> Option<u64> {
        let (store, key) = (self.store.clone(), self.key(digest));
        self.block(async move { store.head(&key).await })
            .ok()
            .map(|m| m.size)
    }

    /// Stores bytes under their digest; a single PUT, atomic on S3.
    pub(crate) fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.contains(digest) {
            return Ok(());
        }
        let (store, key) = (self.store.clone(), self.key(digest));
        let payload = PutPayload::from(bytes.to_vec());
        self.block(async move { store.put(&key, payload).await })
            .map(|_| ())
            .map_err(|e| self.error("writing object", e))
    }

    /// Reads an object; `Ok(None)` if it does not exist.
    pub(crate) fn get(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let (store, key) = (self.store.clone(), self.key(digest));
        let got = self.block(async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| self.error("reading object", e))
    }

    /// Every object under `prefix/objects/sha256/`.
    pub(crate) fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let store = self.store.clone();
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(["objects".into(), "sha256".into()]);
        let prefix = ObjectPath::from_iter(parts);
        let metas = self
            .block(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.error("listing objects", e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let parts: Vec<String> =
                    m.location.parts().map(|p| p.as_ref().to_string()).collect();
                let n = parts.len();
                if n < 2 {
                    return None;
                }
                let hex = format!("{}{}", parts[n - 2], parts[n - 1]);
                hex.parse().ok().map(|digest| Listed {
                    digest,
                    size: m.size,
                    modified: m.last_modified.into(),
                })
            })
            .collect())
    }

    /// A digest of every object under the prefix (key, size, ETag or
    /// modification time): it changes when any object is added, removed or
    /// rewritten.
    pub(crate) fn fingerprint(&self) -> Result<Digest, StoreError> {
        let (store, prefix) = (self.store.clone(), self.prefix.clone());
        let mut metas = self
            .block(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.error("listing objects", e))?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let lines: Vec<String> = metas
            .iter()
            .map(|m| {
                format!(
                    "{}\t{}\t{}\n",
                    m.location,
                    m.size,
                    m.e_tag
                        .clone()
                        .unwrap_or_else(|| m.last_modified.to_rfc3339())
                )
            })
            .collect();
        Ok(Digest::of_parts(lines.iter().map(|l| l.as_bytes())))
    }

    pub(crate) fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        let (store, key) = (self.store.clone(), self.key(digest));
        self.block(async move { store.delete(&key).await })
            .map_err(|e| self.error("deleting object", e))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};

    /// A fresh bucket on the S3-compatible test server, as `s3://BUCKET/prefix`,
    /// with the AWS variables set for it; `None` when no server is configured.
    pub(crate) fn test_bucket(name: &str) -> Option<String> {
        let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").ok()?;
        let bucket = format!(
            "sluice-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        create_bucket(&endpoint, &bucket);
        // SAFETY: every S3 test in this crate sets these same four values,
        // so a concurrent reader sees the same configuration either way.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
            std::env::set_var("AWS_ALLOW_HTTP", "true");
            std::env::set_var("AWS_ACCESS_KEY_ID", "test");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        }
        Some(format!("s3://{bucket}/prefix"))
    }

    /// `PUT /BUCKET` with plain HTTP (the local test server does not check
    /// signatures for bucket creation).
    fn create_bucket(endpoint: &str, bucket: &str) {
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let mut s = std::net::TcpStream::connect(host).expect("the S3 test server is reachable");
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {reply}"
        );
    }
}
