use byoc_bridge::db::schema::{conversations, messages};
use byoc_bridge::db::{DbConn, now};
use byoc_bridge::dispatch;
use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
use byoc_bridge::worker::maintenance;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::helpers::TestDb;

crate::on_both_backends!(message_bodies_and_records_expire_as_configured);

/// Inserts a message created at `created` whose body may go at `purge_after`.
fn insert_message(
    c: &mut DbConn,
    app_id: &str,
    conversation_id: i64,
    provider_id: &str,
    created: NaiveDateTime,
    purge_after: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::insert_into(messages::table)
        .values((
            messages::app_id.eq(app_id),
            messages::conversation_id.eq(conversation_id),
            messages::direction.eq("inbound"),
            messages::provider_message_id.eq(provider_id),
            messages::kind.eq("text"),
            messages::body.eq(Some("hello")),
            messages::body_purge_after.eq(purge_after),
            messages::status.eq("delivered"),
            messages::created_at.eq(created),
            messages::updated_at.eq(created),
        ))
        .execute(c)
}

async fn message_bodies_and_records_expire_as_configured(test_db: TestDb) {
    let services = test_db.services().await;
    let settings = test_db.settings();
    let cipher = services.cipher.clone();
    let t0 = now();
    services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let app = prov::create_app(c, &ctx, "acme", &AppSpec::default()).map_err(anyhow::Error::from)?;
            let conversation: i64 = dispatch!(&mut *c, |c| diesel::insert_into(conversations::table)
                .values((
                    conversations::app_id.eq(&app.id),
                    conversations::end_user_id.eq("447700900001"),
                    conversations::sender_number.eq("447860099299"),
                    conversations::created_at.eq(t0),
                    conversations::updated_at.eq(t0),
                ))
                .returning(conversations::id)
                .get_result(c)?);
            // Delivered an hour ago, body retention ended.
            insert_message(
                c,
                &app.id,
                conversation,
                "m-expired",
                t0 - Duration::hours(2),
                Some(t0 - Duration::hours(1)),
            )?;
            // Delivered, retention still running.
            insert_message(c, &app.id, conversation, "m-kept", t0, Some(t0 + Duration::hours(23)))?;
            // Not delivered yet: no purge time, body must stay however old.
            insert_message(c, &app.id, conversation, "m-pending", t0 - Duration::days(40), None)?;
            // Old and delivered: the record itself goes after 30 days.
            insert_message(
                c,
                &app.id,
                conversation,
                "m-ancient",
                t0 - Duration::days(31),
                Some(t0 - Duration::days(30)),
            )?;
            // Failed attempts (the console's traces) follow the record retention.
            let job =
                byoc_bridge::db::attempts::JobRef { job_id: 1, kind: "deliver_inbound".into(), ..Default::default() };
            for (days, error) in [(31, "old failure"), (1, "recent failure")] {
                let at = t0 - Duration::days(days);
                byoc_bridge::db::attempts::record(c, &job, 1, byoc_bridge::db::AttemptOutcome::Retry, error, at)?;
            }
            Ok(())
        })
        .await
        .unwrap();

    let report = maintenance::purge(&services.db, &settings.retention, t0).await.unwrap();
    assert_eq!(report.bodies_cleared, 2, "m-expired and m-ancient lose their bodies");
    assert_eq!(report.records_deleted, 1, "only m-ancient is past the 30-day record retention");
    assert_eq!(report.attempts_deleted, 1, "only the old failure is past it");

    let mut left: Vec<(String, Option<String>)> = services
        .db
        .run(|c| Ok(messages::table.select((messages::provider_message_id, messages::body)).load(c)?))
        .await
        .unwrap();
    left.sort();
    assert_eq!(
        left,
        [
            ("m-expired".to_owned(), None),
            ("m-kept".to_owned(), Some("hello".to_owned())),
            ("m-pending".to_owned(), Some("hello".to_owned())),
        ]
    );

    // A second pass finds nothing more to do.
    let again = maintenance::purge(&services.db, &settings.retention, t0).await.unwrap();
    assert_eq!((again.bodies_cleared, again.records_deleted, again.attempts_deleted), (0, 0, 0));
}
