//! Reading the PEM a connector stores, and saying exactly what is wrong when it is
//! not what it should be: base64-wrapped PEM, DER, a key where a certificate
//! belongs (or the other way round), an encrypted key without its passphrase.
//!
//! Client keys: RSA (PKCS#1 or PKCS#8), EC (SEC1 or PKCS#8), Ed25519 (PKCS#8), and
//! encrypted PKCS#8 with the passphrase; an encrypted key is decrypted here and
//! handed to the Kubernetes client as unencrypted PKCS#8 PEM. Nothing in this
//! module ever puts key material into an error message.

use base64::Engine as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::Decode as _;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;

/// Why a stored value is not the PEM it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    #[error("it is empty")]
    Empty,
    #[error("it looks like base64-wrapped PEM: base64 of a '-----BEGIN {label}-----' block, encoded once too often")]
    Base64WrappedPem { label: String },
    #[error("it looks like base64 of a binary DER certificate or key, not PEM")]
    Base64Der,
    #[error("it looks like a binary DER certificate or key, not PEM text")]
    Der,
    #[error("it is a private key ('{label}'), not a certificate")]
    PrivateKey { label: String },
    #[error("it is a public key, not a certificate")]
    PublicKey,
    #[error("it is a certificate signing request, not a certificate")]
    CertificateRequest,
    #[error("it holds a PEM block '{label}', not a certificate")]
    UnexpectedBlock { label: String },
    #[error("it is not PEM: no '-----BEGIN ...-----' block")]
    NotPem,
    #[error("its PEM is damaged: {reason}")]
    BadPem { reason: String },
    #[error("certificate #{index} in it is not valid X.509: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("it is a certificate, not a private key")]
    CertificateInsteadOfKey,
    #[error("the key is encrypted and no passphrase was given")]
    PassphraseRequired,
    #[error("the passphrase does not decrypt the key")]
    WrongPassphrase,
    #[error("the key uses the legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED)")]
    LegacyEncryptedKey,
    #[error("the key cannot be used: {reason}")]
    UnsupportedKey { reason: String },
}

/// The label of the first `-----BEGIN X-----` line, if any.
fn first_label(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim().to_string())
}

/// What a non-PEM value looks like.
fn sniff_non_pem(text: &str) -> PemProblem {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let looks_b64 = compact.len() >= 16
        && compact
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'));
    if looks_b64 {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes())
            })
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(compact.as_bytes())
            });
        if let Ok(bytes) = decoded {
            if let Some(label) = std::str::from_utf8(&bytes).ok().and_then(first_label) {
                return PemProblem::Base64WrappedPem { label };
            }
            if bytes.first() == Some(&0x30) {
                return PemProblem::Base64Der;
            }
        }
        return PemProblem::NotPem;
    }
    // DER starts with a SEQUENCE (0x30) and is binary: as a String, its invalid
    // UTF-8 shows up as U+FFFD and its length bytes as control characters.
    let binary = text
        .chars()
        .filter(|&c| c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()))
        .count();
    if text.starts_with('0') && binary > 0 {
        return PemProblem::Der;
    }
    PemProblem::NotPem
}

fn pem_error(e: rustls::pki_types::pem::Error) -> PemProblem {
    PemProblem::BadPem {
        reason: match e {
            rustls::pki_types::pem::Error::MissingSectionEnd { .. } => {
                "a '-----BEGIN' line has no matching '-----END' line".to_string()
            }
            rustls::pki_types::pem::Error::Base64Decode(_) => {
                "the text between BEGIN and END is not valid base64".to_string()
            }
            rustls::pki_types::pem::Error::IllegalSectionStart { .. } => {
                "a '-----BEGIN' line is malformed".to_string()
            }
            other => other.to_string(),
        },
    }
}

/// Every known PEM block of `text`, in order.
fn blocks(text: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, PemProblem> {
    <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)
}

/// Checks that `text` is one or more PEM certificates, and returns them (DER).
/// Says what the value is instead when it is not: base64-wrapped PEM, DER, a key,
/// a CSR, ...
pub fn diagnose_ca_pem(text: &str) -> Result<Vec<CertificateDer<'static>>, PemProblem> {
    certificates(text)
}

/// Same as [`diagnose_ca_pem`], for `clientCertRef`.
pub(crate) fn certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, PemProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PemProblem::Empty);
    }
    let Some(label) = first_label(text) else {
        return Err(sniff_non_pem(text));
    };
    // Keys (also encrypted or legacy ones, which the block parser cannot read):
    // say so before trying to parse.
    let certs: Vec<CertificateDer<'static>> = match blocks(text) {
        Ok(blocks) => blocks
            .into_iter()
            .filter(|(k, _)| *k == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect(),
        Err(e) if label.contains("PRIVATE KEY") => {
            let _ = e;
            return Err(PemProblem::PrivateKey { label });
        }
        Err(e) => return Err(e),
    };
    if certs.is_empty() {
        return Err(match label.as_str() {
            l if l.contains("PRIVATE KEY") => PemProblem::PrivateKey { label },
            "PUBLIC KEY" | "RSA PUBLIC KEY" => PemProblem::PublicKey,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => PemProblem::CertificateRequest,
            _ => PemProblem::UnexpectedBlock { label },
        });
    }
    for (i, der) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(der) {
            return Err(PemProblem::BadCertificate {
                index: i + 1,
                reason: e.to_string(),
            });
        }
    }
    Ok(certs)
}

/// A client key ready for use.
pub(crate) struct ClientKey {
    pub der: PrivateKeyDer<'static>,
    /// Unencrypted PEM for the Kubernetes client.
    pub pem: SecretString,
    /// E.g. `EC key, SEC1` (no key material).
    pub description: String,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({})", self.description)
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

fn pkcs8_algorithm(der: &[u8]) -> String {
    match pkcs8::PrivateKeyInfo::from_der(der) {
        Ok(info) => {
            let oid = info.algorithm.oid.to_string();
            match oid.as_str() {
                OID_RSA => "RSA".to_string(),
                OID_EC => {
                    let curve = info
                        .algorithm
                        .parameters_oid()
                        .map(|c| match c.to_string().as_str() {
                            "1.2.840.10045.3.1.7" => "P-256".to_string(),
                            "1.3.132.0.34" => "P-384".to_string(),
                            "1.3.132.0.35" => "P-521".to_string(),
                            other => other.to_string(),
                        })
                        .unwrap_or_else(|_| "unknown curve".to_string());
                    format!("EC {curve}")
                }
                OID_ED25519 => "Ed25519".to_string(),
                other => format!("algorithm {other}"),
            }
        }
        Err(_) => "unparsable".to_string(),
    }
}

/// Reads the client key (PKCS#1, PKCS#8, SEC1, or encrypted PKCS#8 with
/// `passphrase`) and checks that rustls can sign with it.
pub(crate) fn client_key(text: &str, passphrase: Option<&str>) -> Result<ClientKey, PemProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PemProblem::Empty);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(PemProblem::LegacyEncryptedKey);
    }
    let Some(label) = first_label(text) else {
        return Err(sniff_non_pem(text));
    };
    let (der, description) = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(passphrase) = passphrase else {
            return Err(PemProblem::PassphraseRequired);
        };
        let (_, doc) = pkcs8::SecretDocument::from_pem(text).map_err(|e| PemProblem::BadPem {
            reason: e.to_string(),
        })?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| {
            PemProblem::BadPem {
                reason: format!("not an encrypted PKCS#8 key: {e}"),
            }
        })?;
        let plain = encrypted.decrypt(passphrase).map_err(|e| match e {
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed) => {
                PemProblem::WrongPassphrase
            }
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm {
                oid,
            }) => PemProblem::UnsupportedKey {
                reason: format!("unsupported key encryption algorithm {oid}"),
            },
            // A wrong passphrase often decrypts to garbage that fails to parse.
            _ => PemProblem::WrongPassphrase,
        })?;
        let bytes = plain.as_bytes().to_vec();
        let desc = format!("{} key, encrypted PKCS#8", pkcs8_algorithm(&bytes));
        (PrivateKeyDer::Pkcs8(bytes.into()), desc)
    } else {
        let key = blocks(text)?
            .into_iter()
            .find_map(|(kind, der)| match kind {
                SectionKind::PrivateKey => {
                    let desc = format!("{} key, PKCS#8", pkcs8_algorithm(&der));
                    Some((PrivateKeyDer::Pkcs8(der.into()), desc))
                }
                SectionKind::RsaPrivateKey => Some((
                    PrivateKeyDer::Pkcs1(der.into()),
                    "RSA key, PKCS#1".to_string(),
                )),
                SectionKind::EcPrivateKey => {
                    Some((PrivateKeyDer::Sec1(der.into()), "EC key, SEC1".to_string()))
                }
                _ => None,
            });
        match key {
            Some(k) => k,
            None if label == "CERTIFICATE" => return Err(PemProblem::CertificateInsteadOfKey),
            None => return Err(PemProblem::UnexpectedBlock { label }),
        }
    };
    // Can rustls sign with it? (Catches truncated keys and unsupported curves.)
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| PemProblem::UnsupportedKey {
            reason: format!("{description}: {e}"),
        })?;
    let (pem_label, body) = match &der {
        PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
        _ => {
            return Err(PemProblem::UnsupportedKey {
                reason: description,
            })
        }
    };
    let pem = pkcs8::der::pem::encode_string(pem_label, LineEnding::LF, body).map_err(|e| {
        PemProblem::BadPem {
            reason: e.to_string(),
        }
    })?;
    Ok(ClientKey {
        der,
        pem: SecretString::from(pem),
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Well-formed PEM framing and base64 around bytes that are not a certificate.
    const NOT_A_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfjCCASWgAwIBAgIUQ3NxgO0lq0tT1YIvuFxP3Z0M0xQwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKdGVzdC1jYS1wZW0wHhcNMjUwMTAxMDAwMDAwWhcNMzUwMTAx
MDAwMDAwWjAVMRMwEQYDVQQDDAp0ZXN0LWNhLXBlbTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABH3dN2pD8d5Kc6t8E3y0bS2k7eWwK1yE8a1KQnRrJbqYd2pE3x0P
7iRk3dZr0n4yC7tYy2b5c7m0Xh2hK1H4qfqjUzBRMB0GA1UdDgQWBBTq8J3bGk6p
-----END CERTIFICATE-----";

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn generated() -> (String, Vec<u8>) {
        // Build a valid certificate at test time: self-contained and always valid.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), cert.der().to_vec())
    }

    #[test]
    fn a_pem_certificate_is_accepted() {
        let (pem, der) = generated();
        let certs = diagnose_ca_pem(&format!("\n{pem}\n")).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref(), der.as_slice());
        // A bundle of two.
        assert_eq!(diagnose_ca_pem(&format!("{pem}{pem}")).unwrap().len(), 2);
    }

    #[test]
    fn base64_wrapped_pem_is_recognised() {
        let (pem, _) = generated();
        assert_eq!(
            diagnose_ca_pem(&b64(pem.as_bytes())),
            Err(PemProblem::Base64WrappedPem {
                label: "CERTIFICATE".into()
            })
        );
        // With line breaks, as `base64` (76 columns) writes it.
        let wrapped: String = b64(pem.as_bytes())
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(matches!(
            diagnose_ca_pem(&wrapped),
            Err(PemProblem::Base64WrappedPem { .. })
        ));
    }

    #[test]
    fn der_and_base64_der_are_recognised() {
        let (_, der) = generated();
        assert_eq!(diagnose_ca_pem(&b64(&der)), Err(PemProblem::Base64Der));
        let lossy = String::from_utf8_lossy(&der).into_owned();
        assert_eq!(diagnose_ca_pem(&lossy), Err(PemProblem::Der));
    }

    #[test]
    fn keys_csrs_and_damaged_pem_are_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        assert_eq!(
            diagnose_ca_pem(&key.serialize_pem()),
            Err(PemProblem::PrivateKey {
                label: "PRIVATE KEY".into()
            })
        );
        assert_eq!(
            diagnose_ca_pem(&key.public_key_pem()),
            Err(PemProblem::PublicKey)
        );
        assert!(matches!(
            diagnose_ca_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            Err(PemProblem::PrivateKey { .. })
        ));
        let csr = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        assert_eq!(diagnose_ca_pem(&csr), Err(PemProblem::CertificateRequest));
        // Truncated: no END line.
        assert!(matches!(
            diagnose_ca_pem(&NOT_A_CERT[..NOT_A_CERT.len() - 30]),
            Err(PemProblem::BadPem { .. })
        ));
        // PEM framing around a body that is not a certificate.
        assert!(matches!(
            diagnose_ca_pem(NOT_A_CERT),
            Err(PemProblem::BadCertificate { index: 1, .. })
        ));
        assert_eq!(diagnose_ca_pem("  \n"), Err(PemProblem::Empty));
        assert_eq!(diagnose_ca_pem("hello, world"), Err(PemProblem::NotPem));
    }

    #[test]
    fn problems_read_well_in_a_sentence() {
        let msg = format!(
            "caCertRef is not a PEM certificate: {}",
            PemProblem::Base64WrappedPem {
                label: "CERTIFICATE".into()
            }
        );
        assert!(msg.contains("base64-wrapped PEM"), "{msg}");
        assert!(PemProblem::Der.to_string().contains("DER"));
        assert!(PemProblem::PrivateKey {
            label: "RSA PRIVATE KEY".into()
        }
        .to_string()
        .contains("private key"));
    }

    fn p256_pkcs8() -> Vec<u8> {
        rcgen::KeyPair::generate().unwrap().serialize_der()
    }

    #[test]
    fn client_keys_in_every_format_load() {
        let der = p256_pkcs8();
        let pkcs8_pem =
            pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).unwrap();
        let k = client_key(&pkcs8_pem, None).unwrap();
        assert_eq!(k.description, "EC P-256 key, PKCS#8");

        // SEC1: the inner ECPrivateKey of the PKCS#8 structure.
        let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
        let sec1 =
            pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, info.private_key)
                .unwrap();
        let k = client_key(&sec1, None).unwrap();
        assert_eq!(k.description, "EC key, SEC1");
        assert!(matches!(k.der, PrivateKeyDer::Sec1(_)));

        // Encrypted PKCS#8, decrypted with the passphrase into plain PKCS#8 PEM.
        // PBKDF2-SHA256 + AES-256-CBC, as `openssl pkcs8 -topk8` writes by default.
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7; 16])
                .unwrap();
        let enc = info
            .encrypt_with_params(params, b"correct horse")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap();
        let k = client_key(&enc, Some("correct horse")).unwrap();
        assert_eq!(k.description, "EC P-256 key, encrypted PKCS#8");
        use secrecy::ExposeSecret;
        assert!(k
            .pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            client_key(&enc, None).unwrap_err(),
            PemProblem::PassphraseRequired
        );
        assert_eq!(
            client_key(&enc, Some("wrong")).unwrap_err(),
            PemProblem::WrongPassphrase
        );
    }

    #[test]
    fn client_key_mistakes_are_named_without_leaking_the_key() {
        let (cert, _) = generated();
        assert_eq!(
            client_key(&cert, None).unwrap_err(),
            PemProblem::CertificateInsteadOfKey
        );
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            client_key(legacy, Some("x")).unwrap_err(),
            PemProblem::LegacyEncryptedKey
        );
        let der = p256_pkcs8();
        let pem = pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).unwrap();
        assert!(matches!(
            client_key(&b64(pem.as_bytes()), None).unwrap_err(),
            PemProblem::Base64WrappedPem { .. }
        ));
        // A damaged key body: the error names the problem, not the bytes.
        let mut bad = der.clone();
        bad.truncate(40);
        let bad_pem = pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &bad).unwrap();
        let err = client_key(&bad_pem, None).unwrap_err();
        assert!(matches!(err, PemProblem::UnsupportedKey { .. }), "{err:?}");
        let body: String = bad_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!err.to_string().contains(&body));
    }
}
