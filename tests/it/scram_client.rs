//! A SCRAM-SHA-256 client for the tests, written from RFC 5802 §3/§7 independently of
//! Loft's server code (only the HMAC, PBKDF2 and SHA-256 primitives come from crates),
//! and checked against the RFC 7677 example before it is trusted with the server.

#![allow(dead_code)]

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub struct Scram {
    pub gs2: String,
    pub bare: String,
    pub password: String,
    /// ServerSignature the client expects in `v=`, known after `final_message`.
    pub expected_v: Option<String>,
}

impl Scram {
    /// `gs2` is e.g. "n,," or "y,,"; the user name is escaped per RFC 5802 §5.1.
    pub fn new(gs2: &str, user: &str, password: &str, nonce: &str) -> Scram {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            gs2: gs2.to_string(),
            bare: format!("n={user},r={nonce}"),
            password: password.to_string(),
            expected_v: None,
        }
    }

    pub fn first_message(&self) -> String {
        format!("{}{}", self.gs2, self.bare)
    }

    /// The client-final-message for a server-first-message.
    pub fn final_message(&mut self, server_first: &str) -> String {
        let mut nonce = None;
        let mut salt = None;
        let mut iters = None;
        for a in server_first.split(',') {
            match a.split_at(2) {
                ("r=", v) => nonce = Some(v.to_string()),
                ("s=", v) => salt = Some(B64.decode(v).expect("salt base64")),
                ("i=", v) => iters = Some(v.parse::<u32>().expect("iterations")),
                _ => {}
            }
        }
        let (nonce, salt, iters) = (nonce.unwrap(), salt.unwrap(), iters.unwrap());
        assert!(nonce.starts_with(self.bare.split("r=").nth(1).unwrap()));
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<Hmac<Sha256>>(self.password.as_bytes(), &salt, iters, &mut salted)
            .unwrap();
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let server_key = hmac(&salted, b"Server Key");
        let without_proof = format!("c={},r={nonce}", B64.encode(&self.gs2));
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let sig = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        self.expected_v = Some(format!(
            "v={}",
            B64.encode(hmac(&server_key, auth_message.as_bytes()))
        ));
        format!("{without_proof},p={}", B64.encode(proof))
    }
}

#[test]
fn client_matches_rfc7677_example() {
    let mut c = Scram::new("n,,", "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    assert_eq!(c.first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let fin = c.final_message(
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    assert_eq!(
        fin,
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    assert_eq!(
        c.expected_v.as_deref(),
        Some("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    );
}
