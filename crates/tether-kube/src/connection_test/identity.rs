//! Who the credentials say we are (read locally, never verified) and who the API
//! server says we are.

use base64::Engine as _;
use serde_json::Value;

use super::diagnosis::AuthKind;
use super::tls::CertSummary;
use super::{Identity, IdentitySource};

/// The claims of a JWT's payload, without verifying anything.
pub(crate) fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

fn claim_str(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_string)
}

/// What a bearer token says about itself, for the identity and the 401 hints.
pub(crate) fn token_facts(token: &str) -> AuthKind {
    let direct = jwt_claims(token);
    // Copied from a Secret's `data` without decoding: base64 of the JWT.
    let unwrapped = if direct.is_none() {
        base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| jwt_claims(t.trim()))
    } else {
        None
    };
    let claims = direct.as_ref().or(unwrapped.as_ref());
    AuthKind::ServiceAccountToken {
        subject: claims.and_then(|c| claim_str(c, "sub")),
        issuer: claims.and_then(|c| claim_str(c, "iss")),
        expires_at: claims.and_then(|c| c.get("exp")).and_then(Value::as_i64),
        is_jwt: direct.is_some(),
        base64_wrapped: unwrapped.is_some(),
    }
}

/// The identity a JWT claims (`sub`), unverified.
pub(crate) fn from_token(facts: &AuthKind) -> Option<Identity> {
    let AuthKind::ServiceAccountToken {
        subject: Some(sub), ..
    } = facts
    else {
        return None;
    };
    let mut groups = Vec::new();
    if let Some(rest) = sub.strip_prefix("system:serviceaccount:") {
        if let Some((ns, _)) = rest.split_once(':') {
            groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".to_string(),
            ];
        }
    }
    Some(Identity {
        user: sub.clone(),
        groups,
        source: IdentitySource::TokenClaims,
        confirmed_by_server: false,
        label: None,
    })
}

/// The identity of a client certificate: CN is the user, each O a group.
pub(crate) fn from_certificate(cert: &CertSummary) -> Identity {
    Identity {
        user: cert
            .common_name
            .clone()
            .unwrap_or_else(|| cert.subject.clone()),
        groups: cert.organizations.clone(),
        source: IdentitySource::ClientCertificate,
        confirmed_by_server: false,
        label: None,
    }
}

/// The identity of an OIDC ID token under the API server's default mapping
/// (`--oidc-username-claim=sub`, prefixed with `issuer#`).
pub(crate) fn from_id_token(id_token: &str) -> Option<Identity> {
    let claims = jwt_claims(id_token)?;
    let sub = claim_str(&claims, "sub")?;
    let user = match claim_str(&claims, "iss") {
        Some(iss) => format!("{iss}#{sub}"),
        None => sub,
    };
    Some(Identity {
        user,
        groups: Vec::new(),
        source: IdentitySource::OidcIdToken,
        confirmed_by_server: false,
        label: None,
    })
}

/// The user named in a 403 message: `... User "system:serviceaccount:a:b" cannot ...`.
pub(crate) fn from_forbidden_message(message: &str) -> Option<Identity> {
    let start = message.find("User \"")? + "User \"".len();
    let end = message[start..].find('"')? + start;
    let user = &message[start..end];
    (!user.is_empty()).then(|| Identity {
        user: user.to_string(),
        groups: Vec::new(),
        source: IdentitySource::ForbiddenResponse,
        confirmed_by_server: true,
        label: None,
    })
}

/// The user in a SelfSubjectReview answer.
pub(crate) fn from_self_subject_review(body: &Value) -> Option<Identity> {
    let info = body.get("status")?.get("userInfo")?;
    let user = info.get("username")?.as_str()?.to_string();
    let groups = info
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Identity {
        user,
        groups,
        source: IdentitySource::SelfSubjectReview,
        confirmed_by_server: true,
        label: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", e(r#"{"alg":"RS256"}"#), e(payload))
    }

    #[test]
    fn service_account_token_claims_are_read() {
        let t = jwt(
            r#"{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:ci:deployer","exp":1700000000}"#,
        );
        let facts = token_facts(&t);
        let AuthKind::ServiceAccountToken {
            subject,
            expires_at,
            is_jwt,
            base64_wrapped,
            ..
        } = &facts
        else {
            panic!()
        };
        assert_eq!(
            subject.as_deref(),
            Some("system:serviceaccount:ci:deployer")
        );
        assert_eq!(*expires_at, Some(1_700_000_000));
        assert!(*is_jwt && !*base64_wrapped);
        let id = from_token(&facts).unwrap();
        assert_eq!(id.source, IdentitySource::TokenClaims);
        assert!(!id.confirmed_by_server);
        assert!(id.groups.contains(&"system:serviceaccounts:ci".to_string()));
    }

    #[test]
    fn base64_wrapped_and_opaque_tokens_are_told_apart() {
        let t = jwt(r#"{"sub":"system:serviceaccount:a:b"}"#);
        let wrapped = base64::engine::general_purpose::STANDARD.encode(&t);
        let AuthKind::ServiceAccountToken {
            subject,
            is_jwt,
            base64_wrapped,
            ..
        } = token_facts(&wrapped)
        else {
            panic!()
        };
        assert!(!is_jwt && base64_wrapped);
        assert_eq!(subject.as_deref(), Some("system:serviceaccount:a:b"));
        let AuthKind::ServiceAccountToken {
            is_jwt,
            base64_wrapped,
            subject,
            ..
        } = token_facts("abc123.opaque")
        else {
            panic!()
        };
        assert!(!is_jwt && !base64_wrapped && subject.is_none());
    }

    #[test]
    fn forbidden_messages_name_the_user() {
        let m = r#"pods is forbidden: User "system:serviceaccount:ns-1:nobody" cannot list resource "pods" in API group "" in the namespace "ns-1""#;
        let id = from_forbidden_message(m).unwrap();
        assert_eq!(id.user, "system:serviceaccount:ns-1:nobody");
        assert!(id.confirmed_by_server);
        assert!(from_forbidden_message("forbidden").is_none());
    }

    #[test]
    fn oidc_identity_uses_the_default_mapping() {
        let t = jwt(r#"{"iss":"https://idp.example.com","sub":"1234","email":"a@b.c"}"#);
        assert_eq!(
            from_id_token(&t).unwrap().user,
            "https://idp.example.com#1234"
        );
    }
}
