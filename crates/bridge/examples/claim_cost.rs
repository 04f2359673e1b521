//! How long one claim of a batch of 64 jobs, and one count of the queue for `/metrics`, take
//! with 1,000, 15,000 and 60,000 jobs queued across 1,000 conversations: `cargo run --release -p byoc-bridge --example claim_cost -- sqlite`
//! (a fresh file each size) or `-- postgres://…/<an empty database>`. A measurement, not a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use byoc_bridge::db::jobs::{self, NewJob};

#[tokio::main]
async fn main() {
    let target = std::env::args().nth(1).expect("sqlite, or a PostgreSQL URL of an empty database");
    for n in [1_000usize, 15_000, 60_000] {
        let dir = tempfile::tempdir().unwrap();
        let url =
            if target == "sqlite" { format!("sqlite://{}/claim.db", dir.path().display()) } else { target.clone() };
        let env = vec![
            ("BYOC__DATABASE__URL".to_owned(), url),
            ("BYOC__SECURITY__DATA_DIR".to_owned(), dir.path().join("data").display().to_string()),
        ];
        let settings = byoc_bridge::config::Settings::load_from(&env).unwrap();
        let services = byoc_bridge::startup::Services::open(&settings).await.unwrap();
        let now = byoc_bridge::db::now();
        services
            .db
            .write(move |c| {
                diesel::connection::SimpleConnection::batch_execute(c, "DELETE FROM jobs")?;
                let batch: Vec<NewJob> = (0..n)
                    .map(|i| {
                        let mut job = NewJob::new("relay_outbound", &serde_json::json!({}));
                        job.ordering_key = Some(format!("conv:{}", i % 1_000));
                        job
                    })
                    .collect();
                jobs::enqueue(c, &batch)?;
                Ok(())
            })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let lease = std::time::Duration::from_secs(30);
        let later = now + chrono::Duration::seconds(1);
        let claimed = services.db.write(move |c| jobs::claim(c, "bench", 64, lease, later)).await.unwrap();
        let claim = started.elapsed();
        let started = std::time::Instant::now();
        let depth = services.db.run(move |c| jobs::depth(c, later)).await.unwrap();
        println!(
            "backlog {n:>6}: claimed {} in {claim:?}; counted {} due in {:?}",
            claimed.len(),
            depth.due,
            started.elapsed()
        );
    }
}
