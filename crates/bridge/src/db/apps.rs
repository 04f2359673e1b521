//! Rows of `apps`, `infobip_accounts` and `senders`, and the queries on them. Validation,
//! encryption and auditing live in `crate::provisioning`, which is the only writer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{app_waiting_messages, apps, infobip_accounts, senders};
use super::{AppStatus, DbConn, DbError, OrgType};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = apps, treat_none_as_null = true)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    pub status: AppStatus,
    pub org_id: Option<String>,
    pub login_url: String,
    pub instance_url: Option<String>,
    pub consumer_key: Option<String>,
    pub integration_username: Option<String>,
    pub private_key_enc: Option<String>,
    pub certificate_pem: Option<String>,
    pub scrt_url: Option<String>,
    pub channel_address_identifier: Option<String>,
    pub authorization_context: Option<String>,
    pub platform_event: Option<String>,
    pub event_type_field: String,
    pub payload_field: String,
    pub pubsub_endpoint: Option<String>,
    pub welcome_message: String,
    pub closing_message: String,
    pub webhook_hmac_algorithm: String,
    pub webhook_secret_enc: String,
    pub webhook_previous_secret_enc: Option<String>,
    pub webhook_basic_username: Option<String>,
    pub webhook_basic_password_enc: Option<String>,
    pub api_token_hash: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// `hmac` or `basic`.
    pub webhook_auth: String,
    pub webhook_signature_header: String,
    /// `auto`, `entries` or `history`: how a chatbot transcript is imported.
    pub transcript_import: String,
    /// JSON `{"bot": …, "system": …, "agent": …}`: speaker labels of transcript entries.
    pub transcript_labels: String,
    /// Production or sandbox: decides the JWT audience.
    pub org_type: OrgType,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = infobip_accounts)]
pub struct InfobipAccountRow {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub base_url: String,
    pub api_key_enc: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = senders)]
pub struct SenderRow {
    pub id: String,
    pub app_id: String,
    pub infobip_account_id: String,
    pub number: String,
    pub created_at: NaiveDateTime,
}

pub fn list(conn: &mut DbConn) -> Result<Vec<AppRow>, DbError> {
    Ok(apps::table.order(apps::name).select(AppRow::as_select()).load(conn)?)
}

/// Finds an app by id or by name.
pub fn find(conn: &mut DbConn, id_or_name: &str) -> Result<Option<AppRow>, DbError> {
    Ok(apps::table
        .filter(apps::id.eq(id_or_name).or(apps::name.eq(id_or_name)))
        .select(AppRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, row: &AppRow) -> Result<(), DbError> {
    diesel::insert_into(apps::table).values(row).execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut DbConn, row: &AppRow) -> Result<(), DbError> {
    diesel::update(apps::table.find(&row.id)).set(row).execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(apps::table.find(id)).execute(conn)? > 0)
}

/// Messages to the customer while they wait for an agent (empty: none): `queue` at each new
/// place in the queue (Salesforce's `QueuePosition`, `{position}`), `wait` when routing
/// estimates the wait (`RoutingResult`'s estimated wait time, `{minutes}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingMessages {
    pub queue: String,
    pub wait: String,
}

pub fn waiting_messages(conn: &mut DbConn, app_id: &str) -> Result<WaitingMessages, DbError> {
    let row: Option<(String, String)> = app_waiting_messages::table
        .find(app_id)
        .select((app_waiting_messages::queue, app_waiting_messages::wait))
        .first(conn)
        .optional()?;
    Ok(row.map(|(queue, wait)| WaitingMessages { queue, wait }).unwrap_or_default())
}

pub fn set_waiting_messages(conn: &mut DbConn, app_id: &str, messages: &WaitingMessages) -> Result<(), DbError> {
    let values = (app_waiting_messages::queue.eq(&messages.queue), app_waiting_messages::wait.eq(&messages.wait));
    crate::dispatch!(conn, |c| diesel::insert_into(app_waiting_messages::table)
        .values((app_waiting_messages::app_id.eq(app_id), values))
        .on_conflict(app_waiting_messages::app_id)
        .do_update()
        .set(values)
        .execute(c)?);
    Ok(())
}

pub fn accounts(conn: &mut DbConn, app_id: &str) -> Result<Vec<InfobipAccountRow>, DbError> {
    Ok(infobip_accounts::table
        .filter(infobip_accounts::app_id.eq(app_id))
        .order(infobip_accounts::name)
        .select(InfobipAccountRow::as_select())
        .load(conn)?)
}

pub fn insert_account(conn: &mut DbConn, row: &InfobipAccountRow) -> Result<(), DbError> {
    diesel::insert_into(infobip_accounts::table).values(row).execute(conn)?;
    Ok(())
}

pub fn update_account(conn: &mut DbConn, row: &InfobipAccountRow) -> Result<(), DbError> {
    diesel::update(infobip_accounts::table.find(&row.id)).set(row).execute(conn)?;
    Ok(())
}

pub fn delete_account(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(infobip_accounts::table.find(id)).execute(conn)? > 0)
}

pub fn senders(conn: &mut DbConn, app_id: &str) -> Result<Vec<SenderRow>, DbError> {
    Ok(senders::table
        .filter(senders::app_id.eq(app_id))
        .order(senders::number)
        .select(SenderRow::as_select())
        .load(conn)?)
}

pub fn sender_by_number(conn: &mut DbConn, number: &str) -> Result<Option<SenderRow>, DbError> {
    Ok(senders::table.filter(senders::number.eq(number)).select(SenderRow::as_select()).first(conn).optional()?)
}

pub fn insert_sender(conn: &mut DbConn, row: &SenderRow) -> Result<(), DbError> {
    diesel::insert_into(senders::table).values(row).execute(conn)?;
    Ok(())
}

pub fn delete_sender(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(senders::table.find(id)).execute(conn)? > 0)
}

pub fn count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(apps::table.count().get_result(conn)?)
}
