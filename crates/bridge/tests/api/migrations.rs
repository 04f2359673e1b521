use byoc_bridge::db::migrations;
use byoc_bridge::db::schema::*;
use diesel::prelude::*;

use crate::helpers::TestDb;

crate::on_both_backends!(migrations_apply_revert_and_reapply_cleanly, every_table_matches_the_schema);

async fn migrations_apply_revert_and_reapply_cleanly(test_db: TestDb) {
    let db = test_db.raw_db();
    assert!(!migrations::pending(&db).await.unwrap().is_empty(), "fresh database has pending migrations");

    let applied = migrations::run_pending(&db).await.unwrap();
    assert_eq!(
        applied,
        vec![
            "20261121000001".to_owned(),
            "20261121000002".to_owned(),
            "20261121000003".to_owned(),
            "20261121000004".to_owned(),
            "20261201000005".to_owned(),
            "20261201000006".to_owned(),
            "20261202000007".to_owned(),
            "20261202000008".to_owned(),
            "20261202000009".to_owned(),
            "20261202000010".to_owned()
        ]
    );
    assert!(migrations::pending(&db).await.unwrap().is_empty());
    assert!(migrations::run_pending(&db).await.unwrap().is_empty(), "a second run applies nothing");

    // down.sql undoes up.sql: reverting then re-applying works.
    assert_eq!(migrations::revert_all(&db).await.unwrap(), 10);
    assert_eq!(migrations::pending(&db).await.unwrap().len(), 10);
    assert_eq!(migrations::run_pending(&db).await.unwrap().len(), 10);
}

async fn every_table_matches_the_schema(test_db: TestDb) {
    let services = test_db.services().await;
    // Selecting every column of every table through schema.rs fails if a migration and the
    // schema disagree on a column's name or type, on this backend.
    services
        .db
        .run(|conn| {
            apps::table.select(apps::all_columns).load::<byoc_bridge::db::apps::AppRow>(conn)?;
            infobip_accounts::table
                .select(infobip_accounts::all_columns)
                .load::<byoc_bridge::db::apps::InfobipAccountRow>(conn)?;
            senders::table.select(senders::all_columns).load::<byoc_bridge::db::apps::SenderRow>(conn)?;
            conversations::table.select(conversations::all_columns).load::<(
                i64,
                String,
                String,
                String,
                Option<String>,
                Option<String>,
                Option<chrono::NaiveDateTime>,
                String,
                chrono::NaiveDateTime,
                chrono::NaiveDateTime,
                Option<chrono::NaiveDateTime>,
            )>(conn)?;
            messages::table.select(messages::id).load::<i64>(conn)?;
            app_waiting_messages::table
                .select(app_waiting_messages::all_columns)
                .load::<(String, String, String)>(conn)?;
            job_attempts::table
                .select(job_attempts::all_columns)
                .load::<byoc_bridge::db::attempts::JobAttempt>(conn)?;
            messages::table
                .select((
                    messages::direction,
                    messages::provider_message_id,
                    messages::sf_entry_id,
                    messages::kind,
                    messages::body,
                    messages::body_purge_after,
                    messages::status,
                    messages::error,
                    messages::delivered_at,
                    messages::read_at,
                    messages::received_at,
                ))
                .load::<(
                    String,
                    String,
                    Option<String>,
                    String,
                    Option<String>,
                    Option<chrono::NaiveDateTime>,
                    String,
                    Option<String>,
                    Option<chrono::NaiveDateTime>,
                    Option<chrono::NaiveDateTime>,
                    Option<chrono::NaiveDateTime>,
                )>(conn)?;
            jobs::table.select(byoc_bridge::db::jobs::Job::as_select()).load(conn)?;
            handovers::table.select(byoc_bridge::db::handovers::Handover::as_select()).load(conn)?;
            proactive_conversations::table.select(byoc_bridge::db::handovers::Proactive::as_select()).load(conn)?;
            web_sessions::table.select(byoc_bridge::db::web::Session::as_select()).load(conn)?;
            web_grants::table.select(byoc_bridge::db::web::Grant::as_select()).load(conn)?;
            event_cursors::table.select(event_cursors::all_columns).load::<(
                String,
                String,
                Option<String>,
                Option<String>,
                Option<chrono::NaiveDateTime>,
                chrono::NaiveDateTime,
            )>(conn)?;
            audit_log::table.select(byoc_bridge::db::audit::AuditEntry::as_select()).load(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}
