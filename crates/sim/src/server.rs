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

/// Serves a simulator's routes on `host:port` (0 = any free port) with fault injection,
/// on the current runtime. `base_url` is set before the first request can arrive.
pub fn serve<F>(host: &str, port: u16, base_url: &std::sync::Mutex<String>, configure: F) -> std::io::Result<Running>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let (listener, port) = bind(host, port)?;
    if let Ok(mut url) = base_url.lock() {
        *url = format!("http://{host}:{port}");
    }
    let server = actix_web::HttpServer::new(move || {
        let configure = configure.clone();
        actix_web::App::new().wrap(actix_web::middleware::from_fn(super::faults::inject)).configure(configure)
    })
    .listen(listener)?
    .workers(2)
    .disable_signals()
    .run();
    Ok(Running::start(server, port))
}

/// Binds `127.0.0.1:port` (0 = any free port).
pub fn bind(host: &str, port: u16) -> std::io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((host, port))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}
