//! Ready-made [`ConnectionFactory`](crate::pool::ConnectionFactory)
//! implementations, one per cargo feature.

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;
