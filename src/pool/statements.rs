//! The statement cache: prepared statements that stay with a pooled
//! connection across borrows.
//!
//! Preparing costs a round trip (PostgreSQL) or a parse (SQLite) that a
//! pooled connection need pay only once per statement, not once per
//! borrow. Each connection keeps an LRU of up to `statement_cache_size`
//! statements, keyed by their SQL, in its slot: every borrower of that
//! connection finds what earlier borrowers prepared. The least recently
//! used statement goes when a new one needs room, closed through
//! [`PrepareStatement::close_statement`]; a connection's statements go
//! with it when it closes. Hits and misses feed the pool's
//! `cache_hit_rate`.
//!
//! The connection type says how to prepare ([`PrepareStatement`]), since a
//! guard knows its connection's type but not its factory's: adapters
//! implement it for the connections they make.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::error::Result;

/// A connection that can prepare statements for the pool's statement
/// cache ([`PooledConnectionGuard::prepare_cached`](super::PooledConnectionGuard::prepare_cached)).
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, PrepareStatement, Result};
/// use std::sync::Arc;
///
/// /// A connection whose "statements" are numbered parses.
/// struct Conn { parses: u32 }
/// impl PrepareStatement for Conn {
///     type Statement = Arc<str>;
///     fn prepare_statement(&mut self, sql: &str) -> Result<Arc<str>> {
///         self.parses += 1;
///         Ok(Arc::from(sql))
///     }
/// }
///
/// struct Factory;
/// impl ConnectionFactory<Conn> for Factory {
///     fn create(&self) -> Result<Conn> { Ok(Conn { parses: 0 }) }
/// }
///
/// let config = PoolConfig::builder().min_size(1).initial_size(1).max_size(1).statement_cache_size(8).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(Factory))?;
/// for _ in 0..3 {
///     let mut conn = pool.acquire()?;
///     conn.prepare_cached("SELECT 1")?;
/// }
/// assert_eq!(pool.acquire()?.parses, 1, "prepared once, found by the next borrowers");
/// assert_eq!((pool.statistics().cache_hits, pool.statistics().cache_misses), (2, 1));
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
pub trait PrepareStatement: Send + 'static {
    /// A prepared statement's handle, cloned out of the cache on every hit
    /// (`postgres::Statement`, say: a name on the server).
    type Statement: Clone + Send + 'static;

    /// Prepares `sql` on this connection.
    fn prepare_statement(&mut self, sql: &str) -> Result<Self::Statement>;

    /// Releases a statement the cache evicted. The default drops it.
    fn close_statement(&mut self, statement: Self::Statement) -> Result<()> {
        drop(statement);
        Ok(())
    }
}

/// One connection's cached statements, least recently used first out.
pub(crate) struct StatementLru<S> {
    capacity: usize,
    /// Each statement, with the tick of its last use.
    entries: HashMap<Arc<str>, (S, u64)>,
    /// Statements by last use: the first is the one to evict.
    by_use: BTreeMap<u64, Arc<str>>,
    tick: u64,
}

impl<S: Clone> StatementLru<S> {
    pub(crate) fn new(capacity: usize) -> Self {
        StatementLru { capacity, entries: HashMap::new(), by_use: BTreeMap::new(), tick: 0 }
    }

    /// The statement for `sql`, now the most recently used.
    pub(crate) fn get(&mut self, sql: &str) -> Option<S> {
        self.tick += 1;
        let (statement, used) = self.entries.get_mut(sql)?;
        let key = self.by_use.remove(used).expect("every entry is in by_use");
        *used = self.tick;
        self.by_use.insert(self.tick, key);
        Some(statement.clone())
    }

    /// Adds `sql`'s statement; the ones that made room for it, to close.
    pub(crate) fn insert(&mut self, sql: &str, statement: S) -> Vec<S> {
        let mut evicted = Vec::new();
        self.tick += 1;
        if let Some((old, used)) = self.entries.remove(sql) {
            self.by_use.remove(&used);
            evicted.push(old);
        }
        while self.entries.len() >= self.capacity.max(1) {
            let Some((_, key)) = self.by_use.pop_first() else { break };
            if let Some((old, _)) = self.entries.remove(&key) {
                evicted.push(old);
            }
        }
        let key: Arc<str> = Arc::from(sql);
        self.by_use.insert(self.tick, Arc::clone(&key));
        self.entries.insert(key, (statement, self.tick));
        evicted
    }

    /// The cached SQL, least recently used first.
    #[cfg(test)]
    fn order(&self) -> Vec<&str> {
        self.by_use.values().map(|k| &**k).collect()
    }
}

/// A slot's cache, whatever its statement type.
pub(crate) type AnyStatements = Box<dyn Any + Send>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::StatementLru;

    #[test]
    fn evicts_the_least_recently_used_and_a_hit_refreshes() {
        let mut lru = StatementLru::new(3);
        for sql in ["a", "b", "c"] {
            assert!(lru.insert(sql, sql.to_uppercase()).is_empty());
        }
        assert_eq!(lru.get("a").as_deref(), Some("A"), "a is now the most recent");
        assert_eq!(lru.order(), ["b", "c", "a"]);
        assert_eq!(lru.insert("d", "D".into()), ["B"], "b was least recently used");
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.order(), ["c", "a", "d"]);
        assert_eq!(lru.insert("a", "A2".into()), ["A"], "a replaced: the old handle is closed");
        assert_eq!(lru.order(), ["c", "d", "a"]);
        assert_eq!(lru.get("a").as_deref(), Some("A2"));
    }

    #[test]
    fn a_capacity_of_one_keeps_the_last() {
        let mut lru = StatementLru::new(1);
        assert!(lru.insert("a", 1).is_empty());
        assert_eq!(lru.insert("b", 2), [1]);
        assert_eq!((lru.get("a"), lru.get("b")), (None, Some(2)));
    }
}
