//! Recognising the kubeconfig `exec` plugins of the clouds (`aws eks get-token`,
//! `aws-iam-authenticator`, `gke-gcloud-auth-plugin`, `kubelogin`) by their
//! command and arguments, never by running them, and saying which native auth
//! type of a connector replaces each, with the fields the arguments give.

use std::path::Path;

/// The native auth type that replaces an exec plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudExecSuggestion {
    /// `EKS`, `GKE` or `AKS`.
    pub auth_type: &'static str,
    /// The plugin, e.g. `aws eks get-token`.
    pub plugin: &'static str,
    /// `auth.spec` fields read from the arguments, then placeholders for the
    /// secrets to create, in document order.
    pub fields: Vec<(&'static str, String)>,
}

impl CloudExecSuggestion {
    /// The `auth:` block of a connector, for the operator to complete.
    pub fn auth_yaml(&self) -> String {
        let mut s = format!("auth:\n  type: {}\n  spec:\n", self.auth_type);
        if self.fields.is_empty() {
            s.push_str("    {}\n");
        }
        for (k, v) in &self.fields {
            s.push_str(&format!("    {k}: {v}\n"));
        }
        s
    }
}

/// The value after `--flag` or in `--flag=value`.
fn flag(args: &[String], names: &[&str]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        for n in names {
            if a == n {
                return it.next().cloned();
            }
            if let Some(v) = a.strip_prefix(&format!("{n}=")) {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn program(command: &str) -> String {
    Path::new(command)
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The suggestion for an exec plugin, if it is one of the clouds'.
/// `env` is the exec entry's environment (`AWS_PROFILE`, …), names only used.
pub fn recognise(command: &str, args: &[String]) -> Option<CloudExecSuggestion> {
    let prog = program(command);
    let has = |s: &str| args.iter().any(|a| a == s);
    match prog.as_str() {
        "aws" if has("eks") && has("get-token") => Some(eks(
            "aws eks get-token",
            flag(args, &["--cluster-name", "--cluster-id"]),
            flag(args, &["--region"]),
            flag(args, &["--role-arn"]),
        )),
        "aws-iam-authenticator" if has("token") => Some(eks(
            "aws-iam-authenticator",
            flag(args, &["-i", "--cluster-id"]),
            flag(args, &["--region"]),
            flag(args, &["-r", "--role"]),
        )),
        "gke-gcloud-auth-plugin" => Some(CloudExecSuggestion {
            auth_type: "GKE",
            plugin: "gke-gcloud-auth-plugin",
            fields: vec![(
                "serviceAccountKeyRef",
                "<secret holding the service account's JSON key; omit to use the delegate's GKE Workload Identity>".into(),
            )],
        }),
        "kubelogin" if has("get-token") => {
            let mut fields = vec![(
                "tenantId",
                flag(args, &["--tenant-id", "-t"]).unwrap_or_else(|| "<tenant id>".into()),
            )];
            let login = flag(args, &["--login", "-l"]).unwrap_or_default();
            let client = flag(args, &["--client-id"]);
            if login == "workloadidentity" {
                if let Some(c) = client {
                    fields.push(("clientId", c));
                }
            } else {
                fields.push((
                    "clientId",
                    client.unwrap_or_else(|| "<application (client) id of a service principal>".into()),
                ));
                fields.push((
                    "clientSecretRef",
                    "<secret holding its client secret; omit to use the delegate's AKS workload identity>".into(),
                ));
            }
            Some(CloudExecSuggestion {
                auth_type: "AKS",
                plugin: "kubelogin",
                fields,
            })
        }
        _ => None,
    }
}

fn eks(
    plugin: &'static str,
    cluster: Option<String>,
    region: Option<String>,
    role: Option<String>,
) -> CloudExecSuggestion {
    let mut fields = vec![
        (
            "region",
            region.unwrap_or_else(|| "<the cluster's region, e.g. eu-west-1>".into()),
        ),
        (
            "clusterName",
            cluster.unwrap_or_else(|| "<the EKS cluster name>".into()),
        ),
        (
            "accessKeyIdRef",
            "<secret holding an access key id; omit both keys to use the delegate's AWS identity>"
                .into(),
        ),
        (
            "secretAccessKeyRef",
            "<secret holding its secret access key>".into(),
        ),
    ];
    if let Some(r) = role {
        fields.push(("roleArn", r));
    }
    CloudExecSuggestion {
        auth_type: "EKS",
        plugin,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn aws_eks_get_token() {
        let s = recognise(
            "/usr/local/bin/aws",
            &v(&[
                "--region",
                "eu-west-1",
                "eks",
                "get-token",
                "--cluster-name",
                "prod",
                "--role-arn",
                "arn:aws:iam::123456789012:role/ci",
            ]),
        )
        .unwrap();
        assert_eq!(s.auth_type, "EKS");
        assert!(s.fields.contains(&("region", "eu-west-1".into())));
        assert!(s.fields.contains(&("clusterName", "prod".into())));
        assert!(s
            .fields
            .contains(&("roleArn", "arn:aws:iam::123456789012:role/ci".into())));
        assert!(s.auth_yaml().starts_with("auth:\n  type: EKS\n"));
        assert!(recognise("aws", &v(&["sts", "get-caller-identity"])).is_none());
    }

    #[test]
    fn aws_iam_authenticator() {
        let s = recognise(
            "aws-iam-authenticator",
            &v(&[
                "token",
                "-i",
                "prod",
                "-r",
                "arn:aws:iam::123456789012:role/x",
            ]),
        )
        .unwrap();
        assert_eq!(s.auth_type, "EKS");
        assert!(s.fields.contains(&("clusterName", "prod".into())));
        assert!(s
            .fields
            .contains(&("roleArn", "arn:aws:iam::123456789012:role/x".into())));
    }

    #[test]
    fn gke_and_kubelogin() {
        assert_eq!(
            recognise("gke-gcloud-auth-plugin", &[]).unwrap().auth_type,
            "GKE"
        );
        let s = recognise(
            "kubelogin",
            &v(&[
                "get-token",
                "--login",
                "spn",
                "--server-id",
                "6dae42f8-4368-4678-94ff-3960e28e3630",
                "--tenant-id",
                "t-1",
                "--client-id",
                "c-1",
            ]),
        )
        .unwrap();
        assert_eq!(s.auth_type, "AKS");
        assert!(s.fields.contains(&("tenantId", "t-1".into())));
        assert!(s.fields.contains(&("clientId", "c-1".into())));
        assert!(s.fields.iter().any(|(k, _)| *k == "clientSecretRef"));
        let wi = recognise(
            "kubelogin",
            &v(&["get-token", "-l", "workloadidentity", "-t", "t"]),
        )
        .unwrap();
        assert!(wi.fields.iter().all(|(k, _)| *k != "clientSecretRef"));
    }
}
