//! Running a simulator's HTTP app on a listener, in-process or as its own process.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;

/// A running simulator: where it listens and how to stop it.
pub struct Running {
    pub base_url: String,
    pub port: u16,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts `server` (already bound to `listener`) on the current runtime.
    pub fn start(server: actix_web::dev::Server, listener_port: u16) -> Self {
        let handle = server.handle();
        let task = tokio::spawn(server);
        Self { base_url: format!("http://127.0.0.1:{listener_port}"), port: listener_port, handle, task }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }

    /// Waits until the server ends (for the standalone process).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// A PEM certificate chain and private key, for serving HTTPS as the vendors do.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl TlsIdentity {
    fn server_config(&self) -> std::io::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS {what}: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| invalid("key", &e))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocols", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Serves a simulator's routes on `host:port` (0 = any free port) with fault injection,
/// on the current runtime. `base_url` is set before the first request can arrive.
pub fn serve<F>(host: &str, port: u16, base_url: &std::sync::Mutex<String>, configure: F) -> std::io::Result<Running>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    serve_with(host, port, None, base_url, configure)
}

/// [`serve`], over HTTPS with `tls` when given.
pub fn serve_with<F>(
    host: &str,
    port: u16,
    tls: Option<&TlsIdentity>,
    base_url: &std::sync::Mutex<String>,
    configure: F,
) -> std::io::Result<Running>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let (listener, port) = bind(host, port)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{port}");
    if let Ok(mut u) = base_url.lock() {
        u.clone_from(&url);
    }
    let server = actix_web::HttpServer::new(move || {
        let configure = configure.clone();
        actix_web::App::new().wrap(actix_web::middleware::from_fn(super::faults::inject)).configure(configure)
    });
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls.server_config()?)?,
        None => server.listen(listener)?,
    };
    let server = server.workers(2).disable_signals().run();
    let mut running = Running::start(server, port);
    running.base_url = url;
    Ok(running)
}

/// Binds `127.0.0.1:port` (0 = any free port).
pub fn bind(host: &str, port: u16) -> std::io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((host, port))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}
