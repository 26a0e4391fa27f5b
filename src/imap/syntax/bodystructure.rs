pub fn bodystructure(_d: &[u8], _p: &crate::mailbox::message::Part, _e: bool, _o: &mut Vec<u8>) {}
