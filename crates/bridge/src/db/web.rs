//! Sessions and one-time grants of the bridge's own pages. Tokens are random; the database
//! holds only their SHA-256, so a leaked database signs no one in.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{web_grants, web_sessions};
use super::{DbConn, DbError, GrantKind, Role};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = web_sessions)]
pub struct Session {
    pub id_hash: String,
    pub app_id: Option<String>,
    pub role: Role,
    pub user_id: String,
    pub user_name: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = web_grants)]
pub struct Grant {
    pub id_hash: String,
    pub kind: GrantKind,
    pub app_id: Option<String>,
    /// JSON: for a sign-in, the PKCE verifier and where to go afterwards.
    pub data: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert_session(conn: &mut DbConn, session: &Session) -> Result<(), DbError> {
    diesel::insert_into(web_sessions::table).values(session).execute(conn)?;
    Ok(())
}

/// A live session by its token's hash.
pub fn session(conn: &mut DbConn, id_hash: &str, now: NaiveDateTime) -> Result<Option<Session>, DbError> {
    Ok(web_sessions::table
        .find(id_hash)
        .filter(web_sessions::expires_at.gt(now))
        .select(Session::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_session_app(conn: &mut DbConn, id_hash: &str, app_id: &str) -> Result<(), DbError> {
    diesel::update(web_sessions::table.find(id_hash)).set(web_sessions::app_id.eq(app_id)).execute(conn)?;
    Ok(())
}

pub fn delete_session(conn: &mut DbConn, id_hash: &str) -> Result<(), DbError> {
    diesel::delete(web_sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}

pub fn insert_grant(conn: &mut DbConn, grant: &Grant) -> Result<(), DbError> {
    diesel::insert_into(web_grants::table).values(grant).execute(conn)?;
    Ok(())
}

/// Takes a live grant of `kind` (it can be used once).
pub fn take_grant(
    conn: &mut DbConn,
    id_hash: &str,
    kind: GrantKind,
    now: NaiveDateTime,
) -> Result<Option<Grant>, DbError> {
    let grant = web_grants::table
        .find(id_hash)
        .filter(web_grants::kind.eq(kind))
        .filter(web_grants::expires_at.gt(now))
        .select(Grant::as_select())
        .first(conn)
        .optional()?;
    diesel::delete(web_grants::table.find(id_hash)).execute(conn)?;
    Ok(grant)
}

/// Removes unused grants of `kind` (a new bootstrap link replaces the old one).
pub fn delete_grants(conn: &mut DbConn, kind: GrantKind) -> Result<(), DbError> {
    diesel::delete(web_grants::table.filter(web_grants::kind.eq(kind))).execute(conn)?;
    Ok(())
}

/// Drops expired sessions and grants.
pub fn purge_expired(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    let sessions = diesel::delete(web_sessions::table.filter(web_sessions::expires_at.le(now))).execute(conn)?;
    let grants = diesel::delete(web_grants::table.filter(web_grants::expires_at.le(now))).execute(conn)?;
    Ok(sessions + grants)
}

/// Whether an agent of the app is signed in (has opened the template panel) now.
pub fn agent_signed_in(conn: &mut DbConn, app_id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let found = web_sessions::table
        .filter(web_sessions::app_id.eq(app_id))
        .filter(web_sessions::role.eq(Role::Agent))
        .filter(web_sessions::expires_at.gt(now))
        .select(web_sessions::id_hash)
        .first::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}
