//! SQLite through `rusqlite` (feature `sqlite`, on by default).
