//! `byoc-bench`: the bridge binary between both simulators, under load.
//!
//! Starts the simulated Salesforce (REST and Pub/Sub) and Infobip in this process, a fresh
//! database, the bridge binary on it, then drives customers' signed webhooks and agents'
//! answers across many conversations, at the highest rate the bridge sustains or at a fixed
//! one. Prints throughput, latency (webhook sent → Salesforce took the interaction; agent
//! entry published → Infobip took the send), losses, reordering and the bridge's peak
//! memory. Exits 1 if a message was lost, doubled or reordered.
//!
//! ```text
//! cargo build --release --bins
//! target/release/byoc-bench --seconds 60                # SQLite, both ways, max rate
//! target/release/byoc-bench --rate 1000 --seconds 60    # fixed 1,000/s each way
//! target/release/byoc-bench --postgres postgres://postgres@127.0.0.1:5432/postgres
//! target/release/byoc-bench --simulators-alone          # what the simulators reach
//! ```

mod alone;
mod load;
mod proc;
mod record;
mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};

use load::{Customer, Rate, Webhooks};
use record::{Recorder, Summary};
use world::{Backend, World, WorldOptions};

#[derive(Debug, Parser)]
#[command(version, about = "Load benchmark of the bridge between the vendor simulators")]
struct Args {
    /// Run on PostgreSQL: a server URL whose account may create databases (the benchmark
    /// creates its own and drops it). Without it: SQLite in a temporary directory.
    #[arg(long)]
    postgres: Option<String>,
    /// Which traffic to drive.
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    direction: Direction,
    /// Messages per second each way, or "max" for as fast as the bridge sustains.
    #[arg(long, default_value = "max")]
    rate: String,
    /// Length of the measured run, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// End users, each with one conversation.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// WhatsApp sender numbers the conversations are spread over.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Sends per second one number may make, enforced by the simulator and configured in the
    /// bridge (WhatsApp's highest standard tier is 1,000).
    #[arg(long, default_value_t = 1000)]
    sender_limit: u32,
    /// HTTP connections posting webhooks.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// At most this many messages in flight each way at rate "max".
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// How long to wait after the run for the messages still in flight.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    /// The bridge binary (default: `byoc-bridge` next to this program).
    #[arg(long)]
    bridge: Option<std::path::PathBuf>,
    /// A bridge setting for this run, `KEY=VALUE` with the environment's name
    /// (`BYOC__WORKER__CONCURRENCY=64`); may be repeated.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Measure the simulators alone, hammered by the bridge's own clients with no bridge or
    /// database in between, instead of the bridge.
    #[arg(long)]
    simulators_alone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Direction {
    Inbound,
    Outbound,
    Both,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("byoc-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("byoc-bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let rate = match args.rate.as_str() {
        "max" => Rate::Max,
        n => Rate::Fixed(n.parse::<f64>().ok().filter(|r| *r > 0.0).context("--rate: a number or \"max\"")?),
    };
    let bridge_env = args
        .settings
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect::<Option<Vec<_>>>()
        .context("--set takes KEY=VALUE")?;
    let options = WorldOptions {
        backend: args.postgres.clone().map_or(Backend::Sqlite, Backend::Postgres),
        senders: args.senders.max(1),
        sends_per_second_per_sender: args.sender_limit,
        bridge: match &args.bridge {
            Some(path) => path.clone(),
            None if args.simulators_alone => std::path::PathBuf::new(),
            None => world::default_bridge()?,
        },
        bridge_env,
    };
    let world = World::build(&options).await?;
    let customers: Vec<Customer> = (0..args.conversations.max(1))
        .map(|i| Customer {
            user: format!("4477{:08}", 10_000_000 + i),
            sender: world.senders.get(i % world.senders.len()).cloned().unwrap_or_default(),
            conversation: String::new(),
        })
        .collect();
    let backend = if args.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!(
        "byoc-bench: {backend}, {} conversations over {} senders, rate {}, {} s, {} webhook connections",
        customers.len(),
        world.senders.len(),
        args.rate,
        args.seconds,
        args.connections
    );
    let epoch = Instant::now();
    let warm = Recorder::new("warm", epoch, usize::MAX >> 4);
    let inbound = Recorder::new("in", epoch, args.window);
    let outbound = Recorder::new("out", epoch, args.window);
    tap(&world, &warm, &inbound, &outbound);

    if args.simulators_alone {
        return alone::run(&world, customers, &inbound, &outbound, args.connections, args.seconds).await;
    }

    let started = Instant::now();
    let bridge = world.start_bridge(&options)?;
    println!("bridge ready (listening) in {} ms", started.elapsed().as_millis());
    let webhooks = Webhooks::new(&bridge.url, &world.webhook_secret, args.connections)?;

    // Every conversation exists in the org before the run: agents can only answer those.
    let customers = warm_up(&world, &webhooks, &warm, customers, args.connections).await?;
    let customers = Arc::new(customers);

    let stop = Arc::new(AtomicBool::new(false));
    let mut drivers = Vec::new();
    let run_from = epoch.elapsed().as_secs() + 1;
    if args.direction != Direction::Outbound {
        drivers.push(tokio::spawn(load::customers_write(
            webhooks.clone(),
            customers.clone(),
            inbound.clone(),
            rate,
            args.connections,
            stop.clone(),
        )));
    }
    if args.direction != Direction::Inbound {
        drivers.push(tokio::spawn(load::agents_answer(
            world.sf.clone(),
            customers.clone(),
            outbound.clone(),
            rate,
            stop.clone(),
        )));
    }
    let (bridge_cpu, own_cpu) = (proc::cpu(&bridge.pid().to_string()), proc::cpu("self"));
    let run_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = run_started.elapsed();
    let used = |before: Option<Duration>, pid: &str| -> f64 {
        match (before, proc::cpu(pid)) {
            (Some(b), Some(a)) => a.saturating_sub(b).as_secs_f64() / wall.as_secs_f64(),
            _ => f64::NAN,
        }
    };
    let (bridge_cores, own_cores) = (used(bridge_cpu, &bridge.pid().to_string()), used(own_cpu, "self"));
    let run_to = epoch.elapsed().as_secs();
    stop.store(true, Ordering::Relaxed);
    inbound.stop_measuring();
    outbound.stop_measuring();
    inbound.window.close();
    outbound.window.close();
    for driver in drivers {
        let _ = driver.await;
    }
    let deadline = Instant::now() + Duration::from_secs(args.drain_seconds);
    while (inbound.pending() > 0 || outbound.pending() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = proc::memory(bridge.pid()).map(|(hwm, _)| hwm);
    drop(bridge);

    let mut ok = true;
    println!("measured seconds {run_from}..{run_to} of the run (the first second is ramp-up)");
    if args.direction != Direction::Outbound {
        ok &= report("inbound  (webhook → Salesforce)", &inbound.summary(run_from, run_to));
        println!("  webhook attempts answered other than 200: {}", webhooks.refused.load(Ordering::Relaxed));
    }
    if args.direction != Direction::Inbound {
        ok &= report("outbound (agent entry → Infobip)", &outbound.summary(run_from, run_to));
    }
    println!(
        "bridge: peak memory (VmHWM) {} MB; CPU {bridge_cores:.2} cores; this process (simulators and load) {own_cores:.2} cores",
        peak.map_or_else(|| "?".to_owned(), |b| format!("{:.1}", b as f64 / 1e6)),
    );
    Ok(ok)
}

/// Routes the simulators' arrivals to the recorders.
fn tap(world: &World, warm: &Arc<Recorder>, inbound: &Arc<Recorder>, outbound: &Arc<Recorder>) {
    let (warm_sf, inbound_sf) = (warm.clone(), inbound.clone());
    world.sf.tap.set(Arc::new(move |user, interaction| {
        let text = interaction.pointer("/payload/abstractMessage/staticContent/text").and_then(|t| t.as_str());
        if let Some(text) = text {
            warm_sf.arrive(user, text);
            inbound_sf.arrive(user, text);
        }
    }));
    let outbound = outbound.clone();
    world.ib.tap.set(Arc::new(move |user, message| {
        if let Some(text) = message.pointer("/content/text").and_then(|t| t.as_str()) {
            outbound.arrive(user, text);
        }
    }));
}

/// One message from every customer, so each conversation exists in the org; returns the
/// customers with their conversations.
async fn warm_up(
    world: &World,
    webhooks: &Webhooks,
    warm: &Arc<Recorder>,
    customers: Vec<Customer>,
    connections: usize,
) -> anyhow::Result<Vec<Customer>> {
    let started = Instant::now();
    let lanes: Vec<Vec<Customer>> = (0..connections.max(1))
        .map(|lane| customers.iter().skip(lane).step_by(connections.max(1)).cloned().collect())
        .collect();
    futures_util::future::join_all(lanes.into_iter().map(|lane| {
        let (webhooks, warm) = (webhooks.clone(), warm.clone());
        async move {
            for customer in lane {
                let text = warm.leave(Instant::now());
                webhooks.post(&customer, &text).await;
            }
        }
    }))
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while warm.pending() > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "warm-up: {} first messages never reached Salesforce",
            warm.pending()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ready = Vec::with_capacity(customers.len());
    for mut customer in customers {
        let conversation = world.sf.conversation_for(&customer.user).context("warm-up: a conversation is missing")?;
        customer.conversation = conversation.identifier;
        ready.push(customer);
    }
    println!("warm-up: {} conversations opened in {} ms", ready.len(), started.elapsed().as_millis());
    Ok(ready)
}

/// Prints one direction's figures; false when something was lost, doubled or reordered.
fn report(name: &str, s: &Summary) -> bool {
    println!("{name}");
    println!("  delivered/s       {:>10.0} mean, {} in the slowest second", s.per_second, s.slowest_second);
    println!("  latency           p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", ms(s.p50), ms(s.p99), ms(s.max));
    println!(
        "  messages          {} sent, {} arrived, {} lost, {} doubled, {} out of order",
        s.sent, s.arrived, s.lost, s.unexpected, s.out_of_order
    );
    s.lost == 0 && s.unexpected == 0 && s.out_of_order == 0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
