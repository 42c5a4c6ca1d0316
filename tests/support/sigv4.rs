//! An independent AWS Signature Version 4 verifier for requests a mock received, written from
//! AWS's published algorithm (it shares no code with the `aws-sigv4` crate the proxy signs with).
//! `tests/providers.rs` uses it to check that what reached the wire is signed for the exact body.

use sha2::{Digest, Sha256};

use crate::common::Recorded;

/// What a verified `Authorization` header says.
#[derive(Debug, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(block.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's URI encoding: every byte but the unreserved characters as `%XX` (upper-case hex);
/// `/` kept when `keep_slash`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string: the `name=value` pairs as received (the client encoded them
/// once, which is the canonical form for the characters Bedrock URLs use), sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Header values as SigV4 canonicalises them: trimmed, runs of spaces collapsed.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Check the SigV4 `Authorization` header of `req` against `secret`: the canonical request is
/// rebuilt from the method, the path exactly as it arrived (URI-encoded once more, as every
/// service but S3 requires), the query, the signed headers' received values and the SHA-256 of
/// the received body. Returns what the header claims once the signature matches.
pub fn verify(req: &Recorded, secret: &str) -> Result<Signed, String> {
    let auth = req
        .header("authorization")
        .ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not a SigV4 header: {auth}"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or("malformed authorization")?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            other => return Err(format!("unexpected authorization field {other}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let signature = signature.ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(format!("malformed credential scope {credential}"));
    };
    if *terminator != "aws4_request" {
        return Err(format!("scope ends with {terminator}"));
    }
    let amz_date = req.header("x-amz-date").ok_or("no x-amz-date header")?;
    if !amz_date.starts_with(date) {
        return Err(format!(
            "x-amz-date {amz_date} is not on the scope date {date}"
        ));
    }
    let names: Vec<String> = signed_headers.split(';').map(str::to_string).collect();
    let mut sorted = names.clone();
    sorted.sort();
    if sorted != names {
        return Err(format!("SignedHeaders not sorted: {signed_headers}"));
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = req
            .header(name)
            .ok_or_else(|| format!("signed header {name} was not sent"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", canonical_value(value)));
    }
    let (path, query) = req
        .target
        .split_once('?')
        .unwrap_or((req.target.as_str(), ""));
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        uri_encode(path, true),
        canonical_query(query),
        hex(&Sha256::digest(&req.body))
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let expected = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(format!(
            "signature mismatch: header has {signature}, the request as received gives {expected}\ncanonical request:\n{canonical_request}"
        ));
    }
    Ok(Signed {
        access_key_id: (*key_id).to_string(),
        date: (*date).to_string(),
        region: (*region).to_string(),
        service: (*service).to_string(),
        signed_headers: names,
    })
}

/// The verifier itself, on AWS's published `get-vanilla` test vector and on a tampered body.
#[test]
fn the_verifier_accepts_the_aws_test_vector_and_rejects_a_changed_body() {
    let vanilla = Recorded {
        method: "GET".into(),
        target: "/".into(),
        headers: vec![
            ("host".into(), "example.amazonaws.com".into()),
            ("x-amz-date".into(), "20150830T123600Z".into()),
            (
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
            ),
        ],
        body: Vec::new(),
    };
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let signed = verify(&vanilla, secret).unwrap();
    assert_eq!(
        (
            signed.access_key_id.as_str(),
            signed.region.as_str(),
            signed.service.as_str()
        ),
        ("AKIDEXAMPLE", "us-east-1", "service")
    );
    let mut tampered = vanilla.clone();
    tampered.body = b"x".to_vec();
    assert!(verify(&tampered, secret).is_err());
    assert!(verify(&vanilla, "another-secret").is_err());
    assert_eq!(
        uri_encode("/model/a.b-c%3A0/converse", true),
        "/model/a.b-c%253A0/converse"
    );
}
