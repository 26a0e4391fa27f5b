//! Grammar pieces shared by the parser and the response encoder.
pub mod bodystructure;
pub mod envelope;
