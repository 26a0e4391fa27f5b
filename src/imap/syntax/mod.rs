//! Grammar pieces shared by the parser and the response encoder.
