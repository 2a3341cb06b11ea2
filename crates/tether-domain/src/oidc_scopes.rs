//! `oidcScopes` of an OpenIdConnect connector, in both forms users have: one
//! string as in Harness's own documents (`"openid email"` or
//! `"openid,email"`), or a list. The form given is kept, so a document
//! exported again reads as it was imported.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum OidcScopes {
    /// Scopes separated by spaces and/or commas (Harness's form).
    Text(String),
    List(Vec<String>),
}

impl OidcScopes {
    /// The scopes one by one, without empties.
    pub fn to_list(&self) -> Vec<String> {
        let split = |s: &str| {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        match self {
            OidcScopes::Text(s) => split(s),
            OidcScopes::List(l) => l.iter().flat_map(|s| split(s)).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for OidcScopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OidcScopes;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of scopes, or one string of scopes separated by spaces or commas (e.g. \"openid email\")")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OidcScopes, E> {
                Ok(OidcScopes::Text(v.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OidcScopes, A::Error> {
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    list.push(s);
                }
                Ok(OidcScopes::List(list))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_split_and_round_trip() {
        for (text, scopes) in [
            (r#""openid email""#, vec!["openid", "email"]),
            (r#""openid,email""#, vec!["openid", "email"]),
            (
                r#"" openid, email  groups ""#,
                vec!["openid", "email", "groups"],
            ),
            (r#"["openid","email"]"#, vec!["openid", "email"]),
        ] {
            let s: OidcScopes = serde_json::from_str(text).unwrap();
            assert_eq!(s.to_list(), scopes, "{text}");
            assert_eq!(
                serde_json::to_string(&s).unwrap().replace(' ', ""),
                text.replace(' ', ""),
                "exported as given"
            );
        }
        let y: OidcScopes = serde_yaml::from_str("openid email").unwrap();
        assert_eq!(y, OidcScopes::Text("openid email".into()));
        assert_eq!(serde_yaml::to_string(&y).unwrap().trim(), "openid email");
    }

    #[test]
    fn other_types_are_refused_with_both_forms_named() {
        let e = serde_json::from_str::<OidcScopes>("7")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one string of scopes separated by spaces or commas"),
            "{e}"
        );
        let e = serde_json::from_str::<OidcScopes>("[1]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a string"), "{e}");
    }
}
