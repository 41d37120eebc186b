//! HTTPS for the administration API. The SDKs' administration clients always speak HTTPS to
//! the host and port of the connection string, which is the AMQP port; so the AMQP listener
//! tells a TLS handshake (first byte 0x16) from an AMQP header (`A`) and hands TLS
//! connections here. The certificate is self-signed for `localhost`, `127.0.0.1` and `::1`,
//! generated on first start and kept (`emulator-cert.pem`, `emulator-key.pem`) in the data
//! directory, so clients can trust it once.

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS handshake record.
pub const TLS_HANDSHAKE: u8 = 0x16;

/// Why the certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating the certificate.
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate or key file that does not parse.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Building the TLS configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// HTTPS for the administration API: the TLS acceptor and the routes.
pub struct Https {
    acceptor: TlsAcceptor,
    router: Router,
    cert_path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Https {
    /// Loads the certificate kept in `dir`, or generates and keeps one there.
    pub fn new(dir: &Path, router: Router) -> Result<Https, TlsError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cert_path = dir.join("emulator-cert.pem");
        let key_path = dir.join("emulator-key.pem");
        if !(cert_path.exists() && key_path.exists()) {
            let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            let made = rcgen::generate_simple_self_signed(names)?;
            write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
            std::fs::write(&cert_path, made.cert.pem()).map_err(io(&cert_path))?;
        }
        let pem = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let certs = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| pem(&cert_path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(&cert_path, &e))?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem(&key_path, &e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Https {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            router,
            cert_path,
        })
    }

    /// The certificate clients trust (PEM).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Serves one TLS connection with HTTP/1.1 until it ends or the emulator stops.
    pub async fn serve(&self, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let tls = match self.acceptor.accept(stream).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
        };
        let service = TowerToHyperService::new(self.router.clone());
        let conn =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "administration connection ended");
                }
            }
            _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
        }
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io(path))
}
