//! TLS for an https manager URL: the public web roots, plus a private CA when
//! one is given with `--ca-file`.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::DelegateError;

pub fn client_config(ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, DelegateError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| DelegateError::Config(format!("--ca-file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| DelegateError::Config(format!("--ca-file: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(DelegateError::Config(
                "--ca-file holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DelegateError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
