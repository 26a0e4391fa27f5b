//! placeholder until the maildir branch lands
pub fn decode(s: &str) -> Option<String> {
    Some(s.to_string())
}
pub fn encode(s: &str) -> String {
    s.to_string()
}
