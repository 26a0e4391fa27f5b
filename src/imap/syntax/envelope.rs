pub fn envelope(_d: &[u8], _p: &crate::mailbox::message::Part, _o: &mut Vec<u8>) {}
