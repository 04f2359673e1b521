//! The two sources of traffic: customers writing (signed Infobip webhooks over HTTP, a
//! conversation's next message only after the bridge answered 200 for the previous one, as
//! an ordered sender must) and agents answering (entries published on the simulated org's
//! Pub/Sub topic).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, format_signature, inbound_envelope, inbound_result};
use byoc_sim::salesforce::SalesforceSim;
use serde_json::json;
use tokio::sync::mpsc;

use crate::record::Recorder;

/// How fast to send.
#[derive(Debug, Clone, Copy)]
pub enum Rate {
    /// As fast as the bridge takes it, with at most `window` messages in flight.
    Max,
    /// Messages per second, on a schedule that does not wait for the bridge.
    Fixed(f64),
}

/// A customer: the WhatsApp user and the sender number they write to.
#[derive(Debug, Clone)]
pub struct Customer {
    pub user: String,
    pub sender: String,
    /// Their conversation in the simulated org (known after the warm-up).
    pub conversation: String,
}

/// Infobip's side of the webhooks.
#[derive(Clone)]
pub struct Webhooks {
    pub url: String,
    pub secret: String,
    pub http: reqwest::Client,
    pub refused: Arc<AtomicU64>,
    pub message_ids: Arc<AtomicU64>,
}

impl Webhooks {
    pub fn new(bridge_url: &str, secret: &str, connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            url: format!("{bridge_url}/api/infobip/inbound/messages"),
            secret: secret.to_owned(),
            http,
            refused: Arc::default(),
            message_ids: Arc::default(),
        })
    }

    /// Posts one customer message until the bridge answers 200, as Infobip retries.
    pub async fn post(&self, customer: &Customer, text: &str) {
        let id = self.message_ids.fetch_add(1, Ordering::Relaxed);
        let message = inbound_result(
            &customer.user,
            &customer.sender,
            &format!("wamid.bench.{id}"),
            json!({ "type": "TEXT", "text": text }),
        );
        let body = inbound_envelope(vec![message]).to_string();
        let signature =
            format_signature(HmacAlgorithm::HmacSha256, self.secret.as_bytes(), body.as_bytes(), Encoding::Hex, false);
        loop {
            let sent = self
                .http
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("X-Infobip-Signature", &signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(res) if res.status() == 200 => return,
                // Infobip gives up on a 4xx; so does the benchmark, rather than retry forever.
                Ok(res) if res.status().is_client_error() => {
                    eprintln!("byoc-bench: the bridge refused a webhook with {}", res.status());
                    std::process::exit(2);
                }
                Ok(_) | Err(_) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Customers write until `stop`; `connections` ordered senders share the customers.
pub async fn customers_write(
    webhooks: Webhooks,
    customers: Arc<Vec<Customer>>,
    recorder: Arc<Recorder>,
    rate: Rate,
    connections: usize,
    stop: Arc<AtomicBool>,
) {
    let connections = connections.clamp(1, customers.len().max(1));
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    for lane in 0..connections {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
        queues.push(tx);
        let (webhooks, customers, recorder, stop) =
            (webhooks.clone(), customers.clone(), recorder.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            match rate {
                Rate::Max => {
                    let mine: Vec<&Customer> = customers.iter().skip(lane).step_by(connections).collect();
                    for customer in mine.iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let Ok(permit) = recorder.window.acquire().await else { return };
                        permit.forget();
                        let text = recorder.leave(Instant::now());
                        webhooks.post(customer, &text).await;
                    }
                }
                Rate::Fixed(_) => {
                    while let Some((index, at)) = rx.recv().await {
                        if let Some(customer) = customers.get(index) {
                            let text = recorder.leave(at);
                            webhooks.post(customer, &text).await;
                        }
                    }
                }
            }
        }));
    }
    if let Rate::Fixed(per_second) = rate {
        schedule(per_second, &stop, |n, at| {
            let index = n % customers.len();
            if let Some(queue) = queues.get(index % connections) {
                let _ = queue.send((index, at));
            }
        })
        .await;
    }
    drop(queues);
    for task in tasks {
        let _ = task.await;
    }
}

/// Agents answer every conversation in turn until `stop`.
pub async fn agents_answer(
    sf: SalesforceSim,
    customers: Arc<Vec<Customer>>,
    recorder: Arc<Recorder>,
    rate: Rate,
    stop: Arc<AtomicBool>,
) {
    let publish = |n: usize, at: Instant| {
        if let Some(customer) = customers.get(n % customers.len()) {
            let text = recorder.leave(at);
            if let Err(e) = sf.agent_send_text(&customer.conversation, &text) {
                eprintln!("bench: the simulated org did not publish an answer: {e}");
            }
        }
    };
    match rate {
        Rate::Max => {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(permit) = recorder.window.acquire().await else { return };
                permit.forget();
                publish(n, Instant::now());
                n += 1;
                if n % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        Rate::Fixed(per_second) => schedule(per_second, &stop, publish).await,
    }
}

/// Calls `emit(n, when n was due)` for n = 0, 1, 2, … at `per_second`, catching up in bursts
/// when late, until `stop`.
async fn schedule(per_second: f64, stop: &AtomicBool, mut emit: impl FnMut(usize, Instant)) {
    let start = Instant::now();
    let mut emitted = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * per_second) as usize;
        while emitted < due {
            emit(emitted, start + Duration::from_secs_f64(emitted as f64 / per_second));
            emitted += 1;
        }
    }
}
