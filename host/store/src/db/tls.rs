//! TLS to a PostgreSQL server, with rustls (already in the build for S3).
//!
//! The URL asks for it as libpq's do: `sslmode=require`, `verify-ca` or
//! `verify-full` encrypt the connection and verify the server's
//! certificate — always, and always its host name (stricter than libpq's
//! `require`, which verifies nothing) — against the roots in
//! `sslrootcert=FILE` (PEM) when given, else the system's. Without one of
//! them (`disable`, `prefer`, or no `sslmode`) the connection is plain.

use super::DbError;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// What a URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    /// Encrypt and verify.
    pub(super) required: bool,
    /// Trust only these roots (PEM), not the system's.
    pub(super) root: Option<PathBuf>,
}

/// Splits the TLS parameters tokio-postgres does not know (`sslrootcert`,
/// the `verify-*` modes) off `url`: returns the URL it can parse (with
/// `sslmode=require` where TLS is asked for) and the settings.
pub(super) fn settings(url: &str) -> (String, TlsSettings) {
    let Some((base, query)) = url.split_once('?') else {
        return (
            url.to_string(),
            TlsSettings {
                required: false,
                root: None,
            },
        );
    };
    let mut required = false;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslrootcert" => root = Some(PathBuf::from(percent_decode(value))),
            "sslmode" if matches!(value, "require" | "verify-ca" | "verify-full") => {
                required = true;
                kept.push("sslmode=require".to_string());
            }
            _ => kept.push(pair.to_string()),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, TlsSettings { required, root })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls client configuration `settings` asks for.
pub(super) fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, DbError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?;
    let config = match &settings.root {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DbError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(DbError::Tls(format!(
                    "sslrootcert {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| DbError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| DbError::Tls(format!("the system's certificate roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Makes rustls connectors for tokio-postgres.
#[derive(Clone)]
pub(super) struct MakeRustls(pub(super) Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One TLS handshake to come.
pub(super) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS-wrapped connection.
pub(super) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (SCRAM-SHA-256, as without TLS).
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_become_settings_and_a_url_tokio_postgres_reads() {
        let (url, s) = settings(
            "postgres://ann@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
        );
        assert_eq!(
            url,
            "postgres://ann@db/x?sslmode=require&application_name=a"
        );
        assert!(s.required);
        assert_eq!(s.root, Some(PathBuf::from("/etc/ca.pem")));
        let (url, s) = settings("postgres://ann@db/x?sslmode=prefer");
        assert_eq!(url, "postgres://ann@db/x?sslmode=prefer");
        assert!(!s.required);
        let (url, s) = settings("postgres://ann@db/x");
        assert_eq!(url, "postgres://ann@db/x");
        assert_eq!(
            s,
            TlsSettings {
                required: false,
                root: None
            }
        );
    }
}
