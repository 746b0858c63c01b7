//! Taking a queue's due rows in turns per key (a project, an endpoint):
//! every key's first due row before any key's second, each key's backlog
//! read in order only as far as its turns.
//!
//! Ranking every pending row with a window function costs the whole backlog
//! on every wake-up: beside one project with a thousand jobs waiting, a query
//! took up to 140 ms on PostgreSQL and everyone else's jobs waited for it.
//! Here the keys with pending rows come from a skip scan of the queue's
//! `(status, key, ...)` index, one probe per key, and each key's next rows
//! from an ordered index range that stops at the key's limit.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::StoreError;

/// Keys per statement: SQLite allows at most 500 parts in a compound SELECT.
const KEYS_PER_QUERY: usize = 50;

/// The distinct values of `key` among `table`'s pending rows, one index probe each.
pub(crate) async fn pending_keys(
    pool: &AnyPool,
    table: &str,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "WITH RECURSIVE k(key) AS (\
         SELECT MIN({key}) FROM {table} WHERE status = 'pending' \
         UNION ALL \
         SELECT (SELECT MIN(t.{key}) FROM {table} t WHERE t.status = 'pending' AND t.{key} > k.key) \
         FROM k WHERE k.key IS NOT NULL) \
         SELECT key FROM k WHERE key IS NOT NULL"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("key").map_err(StoreError::from))
        .collect()
}

/// The next rows of each of `keys`: `select(n)` is the SELECT, ordered and
/// limited, of the key bound at `$n`, with the time `now` at `$1` and the
/// key's row limit, `per_key(key)`, at `$2`. Keys with the same limit share
/// statements.
async fn next_rows(
    pool: &AnyPool,
    keys: &[String],
    now: i64,
    per_key: impl Fn(&str) -> u32,
    select: impl Fn(usize) -> String,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut by_limit: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for key in keys {
        by_limit.entry(per_key(key)).or_default().push(key);
    }
    let mut rows = Vec::new();
    for (limit, keys) in by_limit {
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let sql = union(chunk.len(), 3, &select);
            let mut query = sqlx::query(&sql).bind(now).bind(i64::from(limit));
            for key in chunk {
                query = query.bind(*key);
            }
            rows.extend(query.fetch_all(pool).await?);
        }
    }
    Ok(rows)
}

/// Up to `limit` of the next rows of `keys` (as [`next_rows`] reads them),
/// in turns: `decode` makes each row its item, the item's key and its order
/// within the key, or `None` to leave the row out.
pub(crate) async fn take<T, K: Ord + Clone, O: Ord + Copy>(
    pool: &AnyPool,
    keys: &[String],
    now: i64,
    (per_key, limit): (impl Fn(&str) -> u32, u32),
    select: impl Fn(usize) -> String,
    decode: impl Fn(&AnyRow) -> Result<Option<(T, K, O)>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = next_rows(pool, keys, now, per_key, select).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.extend(decode(row)?);
    }
    let taken = in_turns(items, |(_, k, _)| k.clone(), |(_, _, o)| *o, limit as usize);
    Ok(taken.into_iter().map(|(item, _, _)| item).collect())
}

/// One statement of `keys` SELECTs, the key of each bound from `$first` on.
fn union(keys: usize, first: usize, select: impl Fn(usize) -> String) -> String {
    (0..keys)
        .map(|i| format!("SELECT * FROM ({}) AS t{i}", select(first + i)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Up to `limit` of `rows` in turns: each key's rows in `order`, then every
/// key's first before any key's second, ties in `order`.
fn in_turns<T, K: Ord + Clone, O: Ord + Copy>(
    mut rows: Vec<T>,
    key: impl Fn(&T) -> K,
    order: impl Fn(&T) -> O,
    limit: usize,
) -> Vec<T> {
    rows.sort_by_key(|r| (key(r), order(r)));
    let mut turn = 0usize;
    let mut turns = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        turn = match i.checked_sub(1).map(|p| &rows[p]) {
            Some(prev) if key(prev) == key(row) => turn + 1,
            _ => 0,
        };
        turns.push(turn);
    }
    let mut ranked: Vec<(usize, T)> = turns.into_iter().zip(rows).collect();
    ranked.sort_by_key(|(turn, row)| (*turn, order(row)));
    ranked.into_iter().take(limit).map(|(_, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_first_turn_before_any_second() {
        // (key, due)
        let rows = vec![("a", 3), ("b", 9), ("a", 1), ("a", 2), ("c", 5), ("b", 8)];
        let taken = in_turns(rows, |r| r.0, |r| r.1, 5);
        assert_eq!(
            taken,
            vec![("a", 1), ("c", 5), ("b", 8), ("a", 2), ("b", 9)]
        );
    }

    #[test]
    fn statements_name_each_key_once() {
        let sql = union(2, 3, |n| format!("SELECT x FROM q WHERE k = ${n} LIMIT $2"));
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT x FROM q WHERE k = $3 LIMIT $2) AS t0 UNION ALL \
             SELECT * FROM (SELECT x FROM q WHERE k = $4 LIMIT $2) AS t1"
        );
    }
}
