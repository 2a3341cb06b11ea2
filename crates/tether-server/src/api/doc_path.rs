//! Deserializing a JSON or YAML body while tracking where in the document the
//! deserializer is (serde_path_to_error), so an error about a field names its
//! document path: `spec.credential.spec.auth.spec.serviceAccountTokenRef` for a
//! missing field, the field itself for an unknown one or a wrong type.
//!
//! Paths are those of validation errors: inside the `connector:` envelope of a
//! connector document they start below it (`spec...`, not `connector.spec...`).
//!
//! serde buffers an adjacently tagged enum (`{type, spec}`) whose `spec` comes
//! before its `type` (JSON objects often arrive sorted), and a buffered value
//! has no path. So when the path stops at such an object, the document is
//! deserialized once more with every `type` key first, for the path alone.

use serde::de::DeserializeOwned;

/// Parses JSON; on failure, the error and the path it concerns (if any).
pub(crate) fn json<T: DeserializeOwned>(
    text: &str,
) -> Result<T, (serde_json::Error, Option<String>)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error concerns a position, not a field.
        let field = inner.is_data().then(|| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_yaml::to_value(v).ok())
                .and_then(path_with_type_first::<T>)
                .or_else(|| field_of(&path, &inner.to_string()))
        });
        (inner, field.flatten())
    })?;
    // Trailing characters after the document, as serde_json::from_str checks.
    de.end().map_err(|e| (e, None))?;
    Ok(value)
}

/// Parses YAML; on failure, the error and the path it concerns (if any).
pub(crate) fn yaml<T: DeserializeOwned>(
    text: &str,
) -> Result<T, (serde_yaml::Error, Option<String>)> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = serde_yaml::from_str::<serde_yaml::Value>(text)
            .ok()
            .and_then(path_with_type_first::<T>)
            .or_else(|| field_of(&path, &inner.to_string()));
        (inner, field)
    })
}

/// The path of the first error when every mapping lists its `type` first.
fn path_with_type_first<T: DeserializeOwned>(v: serde_yaml::Value) -> Option<String> {
    match serde_path_to_error::deserialize::<_, T>(type_first(v)) {
        Ok(_) => None,
        Err(e) => field_of(&e.path().to_string(), &e.into_inner().to_string()),
    }
}

fn type_first(v: serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            let key = Value::String("type".into());
            let mut out = serde_yaml::Mapping::new();
            if let Some(t) = m.get(&key) {
                out.insert(key.clone(), t.clone());
            }
            for (k, v) in m {
                if k != key {
                    out.insert(k, type_first(v));
                }
            }
            Value::Mapping(out)
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(type_first).collect()),
        Value::Tagged(t) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: t.tag,
            value: type_first(t.value),
        })),
        other => other,
    }
}

/// The document path an error concerns: where the deserializer was, plus the
/// field a `missing field`/`unknown field`/`duplicate field` message names.
fn field_of(path: &str, message: &str) -> Option<String> {
    let mut full = match path {
        "." | "" | "?" => String::new(),
        p => p.to_string(),
    };
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.find(p).map(|i| &message[i + p.len()..]))
        .and_then(|rest| rest.split('`').next());
    if let Some(name) = named {
        // An unknown field's path already ends at the field itself.
        if full.rsplit('.').next().is_none_or(|last| last != name) {
            if !full.is_empty() {
                full.push('.');
            }
            full.push_str(name);
        }
    }
    let full = match full.strip_prefix("connector") {
        // The envelope itself is missing: that is its path.
        Some("") => full,
        Some(rest) if rest.starts_with('.') => rest[1..].to_string(),
        _ => full,
    };
    (!full.is_empty()).then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_domain::connector::ConnectorDocument;

    const SA_WITHOUT_TOKEN: &str = r#"{"connector":{"name":"a","identifier":"a","type":"K8sCluster","spec":{"credential":{"type":"ManualConfig","spec":{"masterUrl":"https://k","auth":{"type":"ServiceAccount","spec":{}}}}}}}"#;

    #[test]
    fn a_missing_field_is_named_with_its_path_in_json_and_yaml() {
        let (_, field) = json::<ConnectorDocument>(SA_WITHOUT_TOKEN).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.serviceAccountTokenRef")
        );
        let yaml_doc = "connector:\n  name: a\n  identifier: a\n  type: K8sCluster\n  spec:\n    credential:\n      type: ManualConfig\n      spec:\n        masterUrl: https://k\n        auth:\n          type: ServiceAccount\n          spec: {}\n";
        let (_, field) = yaml::<ConnectorDocument>(yaml_doc).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.serviceAccountTokenRef")
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_named() {
        let doc = SA_WITHOUT_TOKEN.replace(
            r#""spec":{}"#,
            r#""spec":{"serviceAccountTokenRef":"t","tokn":1}"#,
        );
        let (_, field) = json::<ConnectorDocument>(&doc).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.tokn")
        );
        let doc =
            SA_WITHOUT_TOKEN.replace(r#""spec":{}"#, r#""spec":{"serviceAccountTokenRef":7}"#);
        let (_, field) = json::<ConnectorDocument>(&doc).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.serviceAccountTokenRef")
        );
        let (_, field) = json::<ConnectorDocument>(r#"{"connector":{"name":"a"}}"#).unwrap_err();
        assert_eq!(field.as_deref(), Some("type"));
        let (_, field) = json::<ConnectorDocument>(r#"{}"#).unwrap_err();
        assert_eq!(field.as_deref(), Some("connector"));
    }

    #[test]
    fn the_path_is_found_when_spec_comes_before_type() {
        // Sorted keys, as serde_json::Value writes them: `spec` before `type`.
        let sorted = serde_json::from_str::<serde_json::Value>(SA_WITHOUT_TOKEN)
            .unwrap()
            .to_string();
        assert!(sorted.find(r#""spec""#) < sorted.find(r#""type""#));
        let (_, field) = json::<ConnectorDocument>(&sorted).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.serviceAccountTokenRef")
        );
        let yaml_doc = "connector:\n  name: a\n  identifier: a\n  type: K8sCluster\n  spec:\n    credential:\n      spec:\n        masterUrl: https://k\n        auth:\n          spec: {}\n          type: ServiceAccount\n      type: ManualConfig\n";
        let (_, field) = yaml::<ConnectorDocument>(yaml_doc).unwrap_err();
        assert_eq!(
            field.as_deref(),
            Some("spec.credential.spec.auth.spec.serviceAccountTokenRef")
        );
    }

    #[test]
    fn syntax_errors_name_no_field() {
        let (e, field) = json::<ConnectorDocument>(r#"{"connector": "#).unwrap_err();
        assert!(e.is_eof());
        assert_eq!(field, None);
        let valid =
            SA_WITHOUT_TOKEN.replace(r#""spec":{}"#, r#""spec":{"serviceAccountTokenRef":"t"}"#);
        assert!(json::<ConnectorDocument>(&valid).is_ok());
        let (_, field) = json::<ConnectorDocument>(&format!("{valid} x")).unwrap_err();
        assert_eq!(field, None);
    }
}
