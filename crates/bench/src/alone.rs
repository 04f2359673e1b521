//! The simulators alone: the bridge's own vendor clients post to them as fast as they take
//! it, with no database or queue in between, to show the simulators are not what limits a
//! run of the bridge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use byoc_bridge::config::Settings;
use byoc_bridge::directory::Directory;
use byoc_bridge::infobip::messages::{Content, Message};
use byoc_bridge::salesforce::requests::{AbstractMessage, EntryPayload, Interaction};
use byoc_bridge::startup::Services;

use crate::load::Customer;
use crate::record::Recorder;
use crate::world::{APP, World};

pub async fn run(
    world: &World,
    customers: Vec<Customer>,
    inbound: &Arc<Recorder>,
    outbound: &Arc<Recorder>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<bool> {
    let settings = Settings::load_from(&[
        ("BYOC__DATABASE__URL".to_owned(), world.database_url.clone()),
        ("BYOC__SECURITY__MASTER_KEY".to_owned(), world.master_key.clone()),
        ("BYOC__SECURITY__DATA_DIR".to_owned(), world.dir.path().join("alone").display().to_string()),
    ])?;
    let services = Services::open(&settings).await?;
    let snapshot = Directory::new(services.db.clone(), services.cipher.clone()).snapshot().await?;
    let app = snapshot.by_id_or_name(APP).context("the benchmark's app is not active")?;
    let salesforce = byoc_bridge::salesforce::Client::new(&settings.salesforce)?;
    let infobip = byoc_bridge::infobip::Client::new(Duration::from_secs(30))?;
    let customers = Arc::new(customers);
    let lanes = connections.max(1);

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks = (0..lanes).map(|lane| {
        let (salesforce, app, customers, recorder) =
            (salesforce.clone(), app.clone(), customers.clone(), inbound.clone());
        async move {
            for customer in customers.iter().skip(lane).step_by(lanes).cycle() {
                if Instant::now() >= until {
                    return;
                }
                let text = recorder.leave(Instant::now());
                let id = uuid::Uuid::new_v4().to_string();
                let interaction = Interaction::EntryInteraction {
                    timestamp: chrono::Utc::now().timestamp_millis(),
                    payload: EntryPayload::Message {
                        id: id.clone(),
                        abstract_message: AbstractMessage::text(&id, &text),
                    },
                };
                if let Err(e) = salesforce.post_interaction(&app.salesforce, &customer.user, interaction, None).await {
                    eprintln!("bench: the simulated Salesforce refused an interaction: {e}");
                    return;
                }
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let salesforce_rate =
        inbound.arrived.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks = (0..lanes).map(|lane| {
        let (infobip, app, customers, recorder) = (infobip.clone(), app.clone(), customers.clone(), outbound.clone());
        async move {
            for customer in customers.iter().skip(lane).step_by(lanes).cycle() {
                if Instant::now() >= until {
                    return;
                }
                let Some(account) = app.account_for_sender(&customer.sender) else { return };
                let text = recorder.leave(Instant::now());
                let id = uuid::Uuid::new_v4().to_string();
                let content = Content::Text { text };
                let message = Message {
                    from: &customer.sender,
                    to: &customer.user,
                    message_id: &id,
                    callback_data: None,
                    content: &content,
                };
                if let Err(e) = infobip.send(account, &message).await
                    && !e.is_permanent()
                {
                    // The per-sender limit answered 429: pace, as the bridge does.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let infobip_rate =
        outbound.arrived.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("simulators alone, {lanes} concurrent callers, {seconds} s each (this process's two cores shared):");
    println!("  Salesforce Interaction API  {salesforce_rate:>8.0} interactions/s");
    println!("  Infobip WhatsApp sends      {infobip_rate:>8.0} messages/s");
    Ok(true)
}
