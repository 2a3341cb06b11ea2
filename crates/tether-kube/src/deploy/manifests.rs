//! Reading manifests: multi-document YAML (or JSON) from files, each document
//! an object with `apiVersion`, `kind` and `metadata.name`. Parsed with
//! `serde_yaml` (the workspace maps it to serde_norway, the maintained fork of the archived serde_yaml).
//! Every problem names its file, the document's index in it and the line, and
//! all of them are returned at once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Problem;

/// One file's text, as the user gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSource {
    /// Where it came from (a path), for messages.
    pub source: String,
    pub text: String,
}

/// One object to deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub source: String,
    /// 0-based index of the document in its file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// As written; `None` when the document sets none.
    pub namespace: Option<String>,
    pub object: Value,
}

impl Manifest {
    /// `Deployment web` (with `-n ns` when namespaced and known).
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {}/{}", self.kind, ns, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// `file.yaml#2 (line 14)`.
    pub fn location(&self) -> String {
        format!("{}#{} (line {})", self.source, self.document, self.line)
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// Lines (1-based) where each document of `text` starts, in order.
fn document_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut begun = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        let separator = t == "---" || t.starts_with("--- ");
        let first_content = !begun && !t.trim().is_empty() && !t.trim_start().starts_with('#');
        if separator || first_content {
            starts.push(i + 1);
            begun = true;
        }
    }
    if starts.is_empty() {
        starts.push(1);
    }
    starts
}

/// Parses every file; returns the objects or every problem found.
pub fn parse(sources: &[ManifestSource]) -> Result<Vec<Manifest>, Vec<Problem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for src in sources {
        let starts = document_starts(&src.text);
        for (index, doc) in serde_yaml::Deserializer::from_str(&src.text).enumerate() {
            let line = starts.get(index).copied().unwrap_or(1);
            let at = |line: usize| Problem::at(&src.source, index, line);
            match Value::deserialize(doc) {
                Err(e) => {
                    let line = e.location().map(|l| l.line()).unwrap_or(line);
                    problems.push(at(line).with(
                        "INVALID_YAML",
                        format!("not valid YAML: {e}"),
                        "fix the syntax at that line",
                    ));
                    break; // the rest of the file cannot be read reliably
                }
                Ok(Value::Null) => {} // an empty document
                Ok(v) => match object(src, index, line, v) {
                    Ok(mut ms) => out.append(&mut ms),
                    Err(p) => problems.push(p),
                },
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[allow(clippy::result_large_err)] // built once per bad document
fn object(
    src: &ManifestSource,
    index: usize,
    line: usize,
    v: Value,
) -> Result<Vec<Manifest>, Problem> {
    let p = || Problem::at(&src.source, index, line);
    if !v.is_object() {
        return Err(p().with(
            "NOT_AN_OBJECT",
            "the document is not a Kubernetes object (a mapping with apiVersion, kind and metadata)",
            "give each document apiVersion, kind and metadata.name",
        ));
    }
    let str_field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(api_version), Some(kind)) = (str_field("apiVersion"), str_field("kind")) else {
        return Err(p().with(
            "MISSING_KIND",
            "the document has no apiVersion or no kind",
            "add `apiVersion:` and `kind:` (for example apps/v1 and Deployment)",
        ));
    };
    // `kind: List` (what `kubectl get -o yaml` prints) holds objects in items.
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some_and(Value::is_array)) {
        let mut all = Vec::new();
        for item in v["items"].as_array().cloned().unwrap_or_default() {
            all.extend(object(src, index, line, item)?);
        }
        return Ok(all);
    }
    let meta = &v["metadata"];
    let Some(name) = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        let hint = if meta.get("generateName").is_some() {
            "generateName cannot be applied idempotently: give the object a fixed metadata.name"
        } else {
            "add metadata.name"
        };
        return Err(p().with(
            "MISSING_NAME",
            format!("the {kind} has no metadata.name"),
            hint,
        ));
    };
    Ok(vec![Manifest {
        source: src.source.clone(),
        document: index,
        line,
        api_version,
        kind,
        name: name.to_string(),
        namespace: meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        object: v,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Vec<ManifestSource> {
        vec![ManifestSource {
            source: "app.yaml".into(),
            text: text.into(),
        }]
    }

    #[test]
    fn multi_document_files_give_objects_with_their_lines() {
        let text = "# comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\n";
        let ms = parse(&src(text)).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].line, ms[0].document), (2, 0));
        assert_eq!(ms[1].kind, "Deployment");
        assert_eq!(ms[1].namespace.as_deref(), Some("prod"));
        assert_eq!(ms[1].group(), "apps");
        assert_eq!(ms[1].document, 2);
        assert_eq!(ms[1].line, 7);
    }

    #[test]
    fn every_problem_is_reported_with_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\nkind: Secret\nmetadata:\n  name: s\n";
        let problems = parse(&src(text)).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].reason, "MISSING_NAME");
        assert_eq!((problems[0].document, problems[0].line), (Some(0), Some(1)));
        assert_eq!(problems[1].reason, "MISSING_KIND");
        assert_eq!((problems[1].document, problems[1].line), (Some(1), Some(4)));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: [oops\n";
        let problems = parse(&src(text)).unwrap_err();
        assert_eq!(problems[0].reason, "INVALID_YAML");
        assert_eq!(problems[0].document, Some(1));
        assert!(problems[0].line.unwrap() >= 7, "{problems:?}");
    }
}
