//! pgoutput (protocol version 1): message parsing, value conversion and the decoder that
//! assembles messages into transactions.

mod array;
pub(crate) mod decoder;
pub mod message;
pub mod value;

pub use decoder::Decoder;

#[cfg(test)]
mod tests;
