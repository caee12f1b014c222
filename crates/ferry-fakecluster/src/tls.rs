//! The fake cluster's own certificate authority and serving certificate.
//!
//! Every start generates a fresh CA and a server certificate signed by it, valid for the
//! loopback names (`localhost`, `127.0.0.1`, `::1`) and the listen address. Clients trust
//! the CA through the kubeconfig's `certificate-authority-data`, exactly as they would a
//! real cluster's.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors while creating the fake cluster's certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("generating a certificate failed")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS server configuration failed")]
    Config(#[from] rustls::Error),
    #[error("building the client certificate verifier failed: {0}")]
    Verifier(String),
}

/// A CA and a serving certificate signed by it.
pub struct Certificates {
    /// The CA certificate in PEM, as written into kubeconfig files.
    pub ca_pem: String,
    /// The rustls configuration serving the leaf certificate, offering h2 and http/1.1.
    pub server_config: Arc<rustls::ServerConfig>,
    /// Signs client certificates.
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl Certificates {
    /// Generates a CA and a serving certificate for the loopback names and `extra_ip`.
    pub fn generate(extra_ip: Option<IpAddr>) -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "ferry-fakecluster-ca");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        if let Some(ip) = extra_ip {
            let ip = ip.to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }
        let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
        leaf_params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let mut leaf_name = DistinguishedName::new();
        leaf_name.push(DnType::CommonName, "kube-apiserver");
        leaf_params.distinguished_name = leaf_name;
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

        let chain = vec![
            CertificateDer::from(leaf_cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_cert.der().to_vec()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
            issuer: Arc::new(issuer),
        })
    }

    /// A client certificate for `name` signed by the CA, as `(certificate PEM, key PEM)`;
    /// `expired` makes one whose validity ended in 2001.
    pub fn client_certificate(
        &self,
        name: &str,
        expired: bool,
    ) -> Result<(String, String), TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
