//! Ready-made [`ConnectionFactory`](crate::pool::ConnectionFactory)
//! implementations, one per cargo feature.

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "r2d2")]
pub mod r2d2;
