//! `byoc-bridge jobs …`: dead letters.

use clap::Subcommand;

use crate::db::attempts::{Requeue, requeue};
use crate::db::jobs;
use crate::startup::Services;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Show the outbox: due, scheduled, running and dead jobs.
    Status,
    /// List dead letters with their reasons.
    Dead {
        /// Show at most this many, oldest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a dead letter (or all of them) back in the queue with a fresh attempt budget.
    Retry {
        /// The job id; omit with --all.
        id: Option<i64>,
        /// Retry every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

pub async fn run(cmd: JobsCommand, services: &Services) -> anyhow::Result<()> {
    let db = &services.db;
    match cmd {
        JobsCommand::Status => {
            let d = db.run(|c| jobs::depth(c, crate::db::now())).await?;
            println!("due {}  scheduled {}  running {}  dead {}", d.due, d.scheduled, d.running, d.dead);
        }
        JobsCommand::Dead { limit } => {
            let dead = db.run(move |c| jobs::dead_letters(c, limit)).await?;
            if dead.is_empty() {
                println!("no dead letters");
            }
            for job in dead {
                println!(
                    "{}\t{}\tattempts {}\tdied {}\t{}",
                    job.id,
                    job.kind,
                    job.attempts,
                    job.dead_at.map(|t| t.to_string()).unwrap_or_default(),
                    job.last_error.unwrap_or_default()
                );
            }
        }
        JobsCommand::Retry { id, all } => {
            if id.is_none() && !all {
                anyhow::bail!("give a job id, or --all");
            }
            let which = id.map_or(Requeue::All, Requeue::One);
            let n = db.write(move |c| requeue(c, which, None, "the command line", crate::db::now())).await?;
            if n == 0 && id.is_some() {
                anyhow::bail!("job {} is not a dead letter", id.unwrap_or_default());
            }
            println!("{n} job(s) queued again");
        }
    }
    Ok(())
}
