//! `UPDATE` statements that each connection prepares once, not at every run.
//!
//! diesel 2.2 marks every `UPDATE` unsafe to keep in its prepared-statement cache: a
//! changeset of `Option`s leaves out its `None` columns, so one Rust expression can make many
//! SQL texts. SQLite then parses and plans the statement afresh each time (a tenth of the
//! writer's time on the benchmark) and PostgreSQL parses it again at each message.
//!
//! The updates on the message path set a fixed list of columns, so their text never changes.
//! [`update`] writes the same SQL as `diesel::update(..).set(..)` but without that mark, and
//! the connection's cache keeps the statement under its text. Run it on a concrete
//! connection ([`crate::dispatch!`]): the multi-backend wrapper does not say it is cacheable.

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression};
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::sql_types::BoolOrNullableBool;
use diesel::{QueryResult, RunQueryDsl, Table};

/// `UPDATE <table> SET <values> WHERE <filter>`, cacheable (see the module's comment).
#[derive(Debug, Clone)]
pub struct Update<From, Set, Filter> {
    from: From,
    set: Set,
    filter: Filter,
}

/// The rows of `table` that `filter` selects get `values`. Only for a changeset whose columns
/// are always the same (no `Option` that drops one), or the cache gains a statement per shape.
pub fn update<T, W, V>(table: T, filter: W, values: V) -> Update<T::FromClause, V::Changeset, W>
where
    T: Table,
    W: Expression + AppearsOnTable<T>,
    W::SqlType: BoolOrNullableBool,
    V: AsChangeset<Target = T>,
{
    Update { from: table.from_clause(), set: values.as_changeset(), filter }
}

impl<F, S, W, DB> QueryFragment<DB> for Update<F, S, W>
where
    DB: Backend,
    F: QueryFragment<DB>,
    S: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())?;
        Ok(())
    }
}

/// No static id: the cache keys the statement by its SQL text, which is what makes it safe.
impl<F, S, W> QueryId for Update<F, S, W> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, S, W, Conn> RunQueryDsl<Conn> for Update<F, S, W> {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use super::update;

    diesel::table! {
        items (id) {
            id -> BigInt,
            state -> Text,
            seen -> Nullable<BigInt>,
        }
    }

    /// Counts the statements the connection puts in its cache.
    fn counting(conn: &mut SqliteConnection) -> Arc<AtomicUsize> {
        let cached = Arc::new(AtomicUsize::new(0));
        let counter = cached.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { .. } = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        cached
    }

    fn items() -> SqliteConnection {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, state TEXT NOT NULL, seen INTEGER);
             INSERT INTO items (id, state) VALUES (1, 'new'), (2, 'new'), (3, 'new');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn an_update_is_prepared_once_and_changes_what_diesels_would() {
        let mut conn = items();
        let cached = counting(&mut conn);
        for id in 1..=2_i64 {
            let changed = update(
                items::table,
                items::id.eq(id).and(items::seen.is_null().or(items::seen.lt(id))),
                (items::state.eq("done"), items::seen.eq(id * 10)),
            )
            .execute(&mut conn)
            .unwrap();
            assert_eq!(changed, 1);
        }
        assert_eq!(cached.load(Ordering::Relaxed), 1, "the second run reused the first's statement");
        let rows: Vec<(i64, String, Option<i64>)> = items::table.order(items::id).load(&mut conn).unwrap();
        assert_eq!(rows, [(1, "done".into(), Some(10)), (2, "done".into(), Some(20)), (3, "new".into(), None)]);
    }

    #[test]
    fn diesels_own_update_is_prepared_every_time() {
        // Why this module exists: if diesel starts caching its updates, it can go.
        let mut conn = items();
        let cached = counting(&mut conn);
        for id in 1..=2_i64 {
            diesel::update(items::table.find(id)).set(items::state.eq("done")).execute(&mut conn).unwrap();
        }
        assert_eq!(cached.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn its_sql_is_diesels() {
        let ours = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&update(
            items::table,
            items::id.eq(7),
            items::state.eq("x"),
        ))
        .to_string();
        let diesels = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &diesel::update(items::table).filter(items::id.eq(7)).set(items::state.eq("x")),
        )
        .to_string();
        assert_eq!(ours, diesels);
    }
}
